# The scoring service (and the nightly job) in one image: the project installed from this folder, no venv, no
# compiler. Build: docker build -t lead-scoring .   Run with an MLflow server and PostgreSQL: deploy/compose.yaml.
# tests/test_container.py runs the COPY and pip steps below in a fresh virtualenv (no container engine there).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# LightGBM's wheel links OpenMP's runtime, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md serve.py train.py command_line.py ./
COPY features/ features/
COPY crm/ crm/
COPY models/ models/
COPY registry/ registry/
COPY training/ training/
COPY scoring/ scoring/
COPY analysis/ analysis/
COPY workflows/ workflows/
COPY deploy/nightly.sh deploy/nightly.sh
RUN pip install .

# Not root; the working folder is where reports/ and a local mlflow.db would go.
RUN useradd --create-home --uid 10001 lead
USER lead
WORKDIR /home/lead
ENV MLFLOW_TRACKING_URI=http://mlflow:5000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
CMD ["lead-serve", "http", "--host", "0.0.0.0", "--port", "8000", "--workers", "1", "--model", "models:/lead-conversion@champion"]
