"""Create (or complete) docker/.env, the secrets of the docker/ stack: random values, file mode 0600.

`make stack-up` runs it before `docker compose up`; values already in the file are kept, so restarting the
stack keeps its passwords. Nothing secret is in the repository; this file is in .gitignore.
Standard library only (it runs before any venv exists).
"""
from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

# name -> how to make a value (the Fernet key is 32 random bytes, url-safe base64, as Airflow expects)
SECRETS = {
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(24),
    "AIRFLOW_JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "AIRFLOW_FERNET_KEY": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "SPARK_AUTH_SECRET": lambda: secrets.token_hex(32),
    "MLFLOW_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(24),
}


def read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def ensure(path: Path) -> list[str]:
    """Add the missing secrets to ``path`` (created with mode 0600); return the names added."""
    have = read_env(path)
    added = [name for name in SECRETS if not have.get(name)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        if not have:
            f.write("# secrets of the docker/ stack, made by scripts/stack_secrets.py; keep this file private\n")
        for name in added:
            f.write(f"{name}={SECRETS[name]()}\n")
    os.chmod(path, 0o600)  # also when the file was there with a wider mode
    return added


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1] / "docker" / ".env")
    added = ensure(path)
    print(f"{path}: {'created ' + ', '.join(added) if added else 'secrets already there'} (mode 0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
