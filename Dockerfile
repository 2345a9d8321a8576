# 2K2K for CUDA 11.x hosts (NVIDIA driver >= 520): CUDA 11.8 + cuDNN 8 runtime on Ubuntu 22.04,
# Python 3.11 from Ubuntu's archive (pyrender-maintained needs >= 3.11; 22.04's python3 is 3.10),
# torch 2.7.1+cu118 (2.7 is, to our knowledge, the last PyTorch line with CUDA 11.8 wheels; another
# one: --build-arg TORCH_VERSION=... --build-arg TORCHVISION_VERSION=...).
#
#   docker build -t 2k2k .
#   docker run --rm --gpus all -v "$PWD/outputs:/app/outputs" 2k2k              # the demo
#   docker run --rm --gpus all 2k2k python -m pytest -q                           # test suite
#   docker run --rm --gpus all --shm-size 8g -v "$PWD/data:/app/data" \
#       -v "$PWD/outputs:/app/outputs" 2k2k python train.py --phase 1 --data_path data/synthetic
#
# Rendering uses EGL on the GPU (PYOPENGL_PLATFORM=egl; NVIDIA_DRIVER_CAPABILITIES adds "graphics"
# so the container toolkit mounts the driver's EGL library); -e PYOPENGL_PLATFORM=osmesa renders
# on the CPU instead. Nothing downloads weights: mount them,
#   -v "$PWD/checkpoints:/app/checkpoints:ro"
# The process runs as the unprivileged user "app" (uid 1000); a mounted outputs/ must be writable by
# it (or add --user "$(id -u):$(id -g)").
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

ARG TORCH_VERSION=2.7.1
ARG TORCHVISION_VERSION=0.22.1
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu118

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYOPENGL_PLATFORM=egl \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics

# Unpinned apt packages: the CUDA image tracks Ubuntu 22.04's archive, whose security updates
# replace exact versions, so pins would break later builds; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv \
        libegl1 libegl-mesa0 libgl1 libgles2 libosmesa6 libusb-1.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /usr/share/glvnd/egl_vendor.d \
    && printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "libEGL_nvidia.so.0"}}\n' \
        > /usr/share/glvnd/egl_vendor.d/10_nvidia.json \
    && python3.11 -m venv "$VIRTUAL_ENV" \
    && useradd --create-home --uid 1000 app

# torch first, from PyTorch's CUDA 11.8 index; then requirements.txt without its torch pin (the
# pin names the CPU build of the project's own machines; pytorch-msssim, anny and smplx accept
# the CUDA torch already installed).
RUN pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
        --index-url "$TORCH_INDEX"
WORKDIR /app
COPY requirements.txt ./
RUN grep -v '^torch==' requirements.txt > /tmp/requirements-no-torch.txt \
    && pip install -r /tmp/requirements-no-torch.txt \
    && rm /tmp/requirements-no-torch.txt \
    && python -c "import torch; assert torch.version.cuda == '11.8', torch.version.cuda"

# the photo extra (built-in keypoints and masks, requirements-photo.txt; --build-arg PHOTO=0 to
# leave it out): mediapipe without its declared numpy<2 / opencv-contrib, nothing installed changes
ARG PHOTO=1
COPY requirements-photo.txt ./
RUN if [ "$PHOTO" = 1 ]; then \
        pip list --format=freeze --exclude-editable > /tmp/pin \
        && pip install -c /tmp/pin -r requirements-photo.txt \
        && pip install --no-deps mediapipe==0.10.21 \
        && rm /tmp/pin; \
    fi

COPY --chown=app:app . .
RUN pip install --no-deps -e . \
    && mkdir -p outputs checkpoints \
    && chown app:app /app outputs checkpoints

USER 1000:1000
ENV HOME=/home/app
CMD ["python", "demo.py"]
