"""The online API: FastAPI routes over plain service classes, deployed on Ray Serve."""
