#!/bin/sh
# Write a credentials file for deploy/mlflow/docker-compose.yaml with random
# passwords (hex: safe inside URLs), readable by its owner only.
#   deploy/mlflow/make-env.sh ~/.config/ray-unlearn/mlflow.env
# Keep the file outside the repository: nothing then ships it to a cluster or an image.
set -eu
out=${1:?usage: make-env.sh FILE}
if [ -e "$out" ]; then echo "$out exists; not overwriting" >&2; exit 1; fi
mkdir -p "$(dirname "$out")"
umask 077
rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
cat > "$out" <<ENV
POSTGRES_USER=mlflow
POSTGRES_PASSWORD=$(rand)
POSTGRES_DB=mlflow
MINIO_ROOT_USER=mlflow-minio
MINIO_ROOT_PASSWORD=$(rand)
BIND_ADDRESS=127.0.0.1
ENV
echo "wrote $out"
