# air3d service image. Build: `docker build -t air3d .`; CPU: `docker run -p 8000:8000 air3d`;
# GPU (NVIDIA container toolkit on the host): `docker run --gpus all -p 8000:8000 air3d`.
# PyPI's torch wheels carry their own CUDA libraries, so a plain Python base image runs on a
# GPU through the toolkit, and on the CPU without one. Read-only: add `--read-only --tmpfs
# /tmp` (uploads over 1 MB are spooled to /tmp; without a writable one it will not start).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt

# The package itself, from the build context (air3d/, renderer/, model/, service/, evaluation/,
# batch/, assets/ with the shipped model), mounted rather than copied so no source stays in the
# image: installed code only, nothing in /app that could shadow it.
RUN --mount=type=bind,target=/tmp/src,rw pip install --no-cache-dir --no-deps /tmp/src

RUN groupadd --gid 10001 air3d && useradd --create-home --uid 10001 --gid 10001 air3d
USER 10001:10001

ENV AIR3D_HOST=0.0.0.0 \
    AIR3D_PORT=8000 \
    AIR3D_DEVICE=auto
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('AIR3D_PORT', '8000'), timeout=4)"]
CMD ["air3d", "serve"]
