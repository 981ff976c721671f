#!/usr/bin/env python3
"""Makes the GCS service-account test vectors in Tests/TernStorageTests/Fixtures/gcs.

Two throwaway RSA keys (never used anywhere else) are written as PEM files, beside the fields of a
service-account key file without its key (the tests put the two together at run time, so no file in
the repository looks like a real service-account key to secret scanners). PyJWT, an implementation
independent of Tern's, signs the JWT bearer assertions Tern must reproduce byte for byte: RS256 is
deterministic (PKCS#1 v1.5), so the same key and claims give the same token.

    .venv-tools/bin/python scripts/gcs-jwt-vectors.py            # reuse the committed keys, rewrite the vectors
    .venv-tools/bin/python scripts/gcs-jwt-vectors.py --new-keys # make new throwaway keys first
    .venv-tools/bin/python scripts/gcs-jwt-vectors.py --check    # recompute and compare, write nothing

(scripts/install-test-tools.sh installs PyJWT and cryptography into .venv-tools.)
"""
import json
import os
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "TernStorageTests", "Fixtures", "gcs")
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
EMAIL = "tern-test@tern-test-project.iam.gserviceaccount.com"
ACCOUNT = {
    "type": "service_account",
    "project_id": "tern-test-project",
    "private_key_id": "0123456789abcdef0123456789abcdef01234567",
    "client_email": EMAIL,
    "client_id": "100000000000000000001",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "universe_domain": "googleapis.com",
}


def new_key(name):
    """A fresh 2048-bit RSA key as PKCS#8 PEM (the form service-account files carry) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(os.path.join(FIXTURES, f"{name}.pem"), "wb") as f:
        f.write(private)
    with open(os.path.join(FIXTURES, f"{name}.pub.pem"), "wb") as f:
        f.write(public)


def vectors():
    account = dict(ACCOUNT)
    with open(os.path.join(FIXTURES, "test-key.pem")) as f:
        account["private_key"] = f.read()
    cases = [
        (1700000000, account["token_uri"], SCOPE),
        (1234567890, account["token_uri"], SCOPE),
        (1700003600, "http://127.0.0.1:8080/token", "https://www.googleapis.com/auth/devstorage.full_control"),
    ]
    result = []
    for iat, aud, scope in cases:
        # Claims in the order Google documents them; PyJWT keeps a dict's order and sorts the header.
        claims = {"iss": account["client_email"], "scope": scope, "aud": aud, "exp": iat + 3600, "iat": iat}
        token = jwt.encode(claims, account["private_key"], algorithm="RS256", headers={"kid": account["private_key_id"]})
        # Independent check: the token verifies with the public key.
        with open(os.path.join(FIXTURES, "test-key.pub.pem")) as f:
            jwt.decode(token, f.read(), algorithms=["RS256"], audience=aud, options={"verify_exp": False})
        result.append({"iat": iat, "aud": aud, "scope": scope, "jwt": token})
    return result


def main():
    args = sys.argv[1:]
    os.makedirs(FIXTURES, exist_ok=True)
    if "--new-keys" in args or not os.path.exists(os.path.join(FIXTURES, "test-key.pem")):
        new_key("test-key")
        new_key("other-key")
    fields = os.path.join(FIXTURES, "service-account-fields.json")
    if "--check" not in args:
        with open(fields, "w") as f:
            json.dump(ACCOUNT, f, indent=2)
            f.write("\n")
    computed = vectors()
    path = os.path.join(FIXTURES, "jwt-vectors.json")
    if "--check" in args:
        with open(path) as f:
            committed = json.load(f)
        if committed != computed:
            sys.exit("jwt-vectors.json does not match what PyJWT computes from test-key.pem")
        print("jwt-vectors.json matches")
        return
    with open(path, "w") as f:
        json.dump(computed, f, indent=2)
        f.write("\n")
    print(f"wrote {len(computed)} vectors to {path}")


if __name__ == "__main__":
    main()
