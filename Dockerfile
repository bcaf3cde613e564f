# The image the cluster configs run (cluster/kuberay-rayjob.yaml, cluster/ray-cluster-aws-gpu.yaml):
# Ray's GPU image of the Ray version they name, the CUDA build of torch, and this package.
#
#   docker build -t ghcr.io/example/ray-embed:latest . && docker push ghcr.io/example/ray-embed:latest
#
# tests/test_cluster.py checks that this file and the configs agree on the Ray version, the
# image and the entrypoint (python -m ray_job).
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-gpu
ARG RAY_VERSION
ARG TORCH_VERSION=2.13.0

# torch's default Linux x86_64 wheels are the CUDA builds (CUDA libraries as wheels)
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}"

WORKDIR /home/ray/ray_job
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users ray_job ./ray_job
# Ray stays at the base image's version; the entrypoint must start
RUN pip install --no-cache-dir ".[s3]" "ray[default,data]==${RAY_VERSION}" \
    && python -m ray_job --help > /dev/null
