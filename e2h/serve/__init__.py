"""The reranking inference service: FastAPI app (app.py), dynamic batcher (batcher.py), Ray Serve (ray_serve.py).

Nothing here is imported by the e2h core; FastAPI, uvicorn and Ray are imported inside the functions that need them.
"""
