#!/usr/bin/env bash
# Makes the compose cluster's secrets, once: docker/secrets/cluster-secret (the peers' shared
# secret) and docker/secrets/client-tokens (a token per role). Kept out of git and out of the image
# (.gitignore, .dockerignore); compose mounts them read-only under /run/secrets. Rotating: see
# docs/security.md.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
umask 077
random() { python3 -c "import secrets; print(secrets.token_urlsafe($1))"; }
if [[ ! -s secrets/cluster-secret ]]; then
    random 32 > secrets/cluster-secret
    echo "made docker/secrets/cluster-secret"
fi
if [[ ! -s secrets/client-tokens ]]; then
    {
        echo "# role token: read (gets, status), write (also puts, deletes), admin (also leave, forget)"
        echo "read $(random 24)"
        echo "write $(random 24)"
        echo "admin $(random 24)"
    } > secrets/client-tokens
    echo "made docker/secrets/client-tokens"
fi
# Compose bind-mounts the files as they are on the host, and the node runs as uid 10001 in the
# image: as root, hand the files to that uid alone; otherwise they must be readable by it.
if [[ $(id -u) == 0 ]]; then
    chown 10001:10001 secrets/cluster-secret secrets/client-tokens
    chmod 400 secrets/cluster-secret secrets/client-tokens
else
    chmod 644 secrets/cluster-secret secrets/client-tokens
fi
