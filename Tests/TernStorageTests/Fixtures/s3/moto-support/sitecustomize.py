"""Loaded by the moto server the S3 tests start (this directory is on its PYTHONPATH).

moto checks SigV4 signatures by rebuilding the request URL through werkzeug, which decodes
percent-escapes such as %2F in the query and leaves reserved characters (+ = : @ ...) raw in the
path, and then hands that URL to botocore's S3 signer, which uses it as already canonical. The
canonical request moto computes then differs from the one AWS defines (and S3 computes) for any
list prefix containing "/" and any key containing reserved or non-ASCII characters; boto3's own
requests are refused by moto for the same reason.

This patch makes moto's check canonicalize as S3 does: decode the path and each query name and
value, then encode them per RFC 3986 (every byte but A-Z a-z 0-9 - . _ ~, "/" kept in the path).
Nothing else about the check changes: the same headers, payload hash, key and signature comparison.
"""
try:
    from urllib.parse import quote, unquote

    from botocore import auth as _auth

    def _canonical_query_string_url(self, parts):
        pairs = []
        for pair in parts.query.split("&"):
            if not pair:
                continue
            name, _, value = pair.partition("=")
            pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
        return "&".join(f"{name}={value}" for name, value in sorted(pairs))

    def _normalize_url_path(self, path):
        return quote(unquote(path), safe="/-_.~")

    _auth.S3SigV4Auth._canonical_query_string_url = _canonical_query_string_url
    _auth.S3SigV4Auth._normalize_url_path = _normalize_url_path
except ImportError:
    pass
