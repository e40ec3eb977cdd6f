"""A real S3-compatible server on loopback for tests and benchmarks: moto in server mode.

It starts without authentication, creates an IAM user with an access key and a policy allowing
S3, then turns authentication on (moto's ``/moto-api/reset-auth``): from then on every request
must carry a valid SigV4 signature of that user, so wrong or missing credentials are refused
the way AWS refuses them. Jobs run by the node runner share the host's network, so they reach
it at the same 127.0.0.1 address.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ports import free_port, is_listening

REGION = "us-east-1"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    """Where the server listens and the credentials it accepts."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION

    def env(self) -> dict[str, str]:
        """The standard variables an S3 client reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def client(self) -> Any:
        """A boto3 S3 client (a test's inspection tool: list multipart uploads, corrupt...)."""
        import boto3  # noqa: PLC0415 - only tests that inspect the bucket need it

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def new_bucket(self) -> str:
        name = f"kubemigrate-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def running(log: Path) -> Iterator[S3Server]:
    """Start moto_server on a free loopback port; stop it afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while not is_listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start; see {log}")
            time.sleep(0.1)
        yield _with_user(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _with_user(endpoint: str) -> S3Server:
    """Create the IAM user and its key while authentication is off, then turn it on."""
    import boto3  # noqa: PLC0415

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # noqa: S106 - moto accepts anything before reset-auth
    )
    iam.create_user(UserName="kubemigrate")
    iam.put_user_policy(UserName="kubemigrate", PolicyName="s3", PolicyDocument=json.dumps(POLICY))
    key = iam.create_access_key(UserName="kubemigrate")["AccessKey"]
    request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 endpoint
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "application/json"},  # a form type would hide the body
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        resp.read()
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
