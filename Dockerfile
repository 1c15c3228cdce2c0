# air3d service image: `docker build -t air3d . && docker run --gpus all -p 8000:8000 air3d`.
# PyPI's torch wheels carry their own CUDA libraries, so a plain Python base image runs on
# a GPU through the NVIDIA container toolkit, and on the CPU (automatically) without one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: rebuilt only when pyproject.toml changes. A stub package
# lets pip resolve the project's dependencies before the source is copied in.
COPY pyproject.toml README.md ./
RUN mkdir air3d && touch air3d/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes air3d \
    && rm -rf air3d build ./*.egg-info

# The source, including the shipped model (air3d/assets/model/default.pt).
COPY air3d ./air3d
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info

RUN groupadd --gid 10001 air3d && useradd --create-home --uid 10001 --gid 10001 air3d
USER 10001:10001

ENV AIR3D_HOST=0.0.0.0 \
    AIR3D_PORT=8000 \
    AIR3D_DEVICE=auto
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('AIR3D_PORT', '8000'), timeout=4)"]
CMD ["air3d", "serve"]
