# syntax=docker/dockerfile:1
# The finsent image: `finsent worker` by default, `finsent scheduler` or any other command as args.
#   docker build -t finsent .                                CPU (the default)
#   docker build --build-arg TORCH=cuda -t finsent:cuda .    CUDA (needs the NVIDIA container toolkit to run)
# Only the torch stage differs between the two; everything after it is the one `runtime` stage.
# Torch goes in before the project, pinned: an open range would pull a multi-GB CUDA build into the
# CPU image. The project goes in as a wheel (not editable), so the shipped model is package data.
# It goes in without extras: neither `embedded` (embedded PostgreSQL and broker) nor `plot` (matplotlib).

ARG PYTHON_IMAGE=python:3.11-slim
# The CUDA build of torch 2.13.0 on PyPI is linked against CUDA 13.0; the base brings the
# NVIDIA_* variables the container toolkit reads, the wheel brings its own CUDA libraries.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04
# The torch build the image runs on: cpu or cuda (the stages torch-cpu and torch-cuda below).
ARG TORCH=cpu

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY consumers ./consumers
COPY storage ./storage
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${CUDA_IMAGE} AS torch-cuda
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/finsent PATH=/opt/finsent/bin:$PATH
RUN python3 -m venv /opt/finsent \
    && pip install --no-cache-dir torch==2.13.0

FROM ${PYTHON_IMAGE} AS torch-cpu
ENV VIRTUAL_ENV=/opt/finsent PATH=/opt/finsent/bin:$PATH
RUN python -m venv /opt/finsent \
    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

FROM torch-${TORCH} AS runtime
ARG TORCH
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/finsent-*.whl && rm -rf /wheels
# The CUDA image carries the accurate model's base encoder (about 440 MB), which FINSENT_MODEL=auto
# picks on a GPU; the CPU image scores with the fast model and stays small.
RUN if [ "$TORCH" = cuda ]; then FINSENT_DATA_DIR=/var/lib/finsent finsent model install; fi
RUN useradd --system --create-home --uid 10001 finsent \
    && mkdir -p /var/lib/finsent && chown -R finsent:finsent /var/lib/finsent
ENV FINSENT_DATA_DIR=/var/lib/finsent HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
USER finsent
WORKDIR /var/lib/finsent
ENTRYPOINT ["finsent"]
CMD ["worker"]
