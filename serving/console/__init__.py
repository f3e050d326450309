"""The web console for marketers and operators, served by the API application at /console."""
