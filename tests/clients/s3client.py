#!/usr/bin/env python3
"""boto3 operations for the integration tests. Each subcommand prints one JSON object.

Usage: s3client.py ENDPOINT ACCESS_KEY SECRET_KEY COMMAND [ARGS...]
(`dir-torrent BUCKET PREFIX PATH`: a directory torrent, signed by botocore's SigV4.)
Errors from S3 are printed as {"error": {"status", "code", "message", "request_id"}}, exit 0,
so the Rust test can assert on them.
"""
import json
import os
import sys

import boto3
import botocore
from botocore.config import Config


def client(endpoint, ak, sk):
    # S3CLIENT_SIGNATURE: "s3v4" (default), "s3" (SigV2 headers), or "default": no
    # signature_version given, as most users write it (boto3 then presigns with SigV2).
    signature = os.environ.get("S3CLIENT_SIGNATURE", "s3v4")
    options = dict(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    if signature != "default":
        options["signature_version"] = signature
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name=os.environ.get("S3CLIENT_REGION", "us-east-1"),
        config=Config(**options),
    )


def directory_torrent(endpoint, ak, sk, bucket, prefix, path):
    """A signed GET /{bucket}/?torrent&prefix=… (boto3 has no operation for it), signed by
    botocore's own SigV4 signer as any S3 request."""
    from urllib.parse import quote

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.httpsession import URLLib3Session

    url = f"{endpoint}/{bucket}/?torrent&prefix={quote(prefix, safe='')}"
    req = AWSRequest(method="GET", url=url)
    S3SigV4Auth(Credentials(ak, sk), "s3", os.environ.get("S3CLIENT_REGION", "us-east-1")).add_auth(req)
    r = URLLib3Session().send(req.prepare())
    body = r.content
    if r.status_code != 200:
        text = body.decode("utf-8", "replace")

        def field(name):
            start = text.find(f"<{name}>")
            end = text.find(f"</{name}>")
            return text[start + len(name) + 2 : end] if start >= 0 and end > start else None

        return {
            "error": {
                "status": r.status_code,
                "code": field("Code"),
                "message": field("Message"),
                "request_id": field("RequestId") or r.headers.get("x-amz-request-id"),
            }
        }
    with open(path, "wb") as f:
        f.write(body)
    return {"status": r.status_code, "headers": dict(r.headers)}


def main():
    endpoint, ak, sk, cmd, *args = sys.argv[1:]
    if cmd == "dir-torrent":
        print(json.dumps(directory_torrent(endpoint, ak, sk, *args)))
        return
    s3 = client(endpoint, ak, sk)
    try:
        out = run(s3, cmd, args)
    except botocore.exceptions.ClientError as e:
        meta = e.response.get("ResponseMetadata", {})
        out = {
            "error": {
                "status": meta.get("HTTPStatusCode"),
                "code": e.response.get("Error", {}).get("Code"),
                "message": e.response.get("Error", {}).get("Message"),
                "request_id": meta.get("RequestId")
                or meta.get("HTTPHeaders", {}).get("x-amz-request-id"),
            }
        }
    print(json.dumps(out))


def run(s3, cmd, args):
    if cmd == "mkbucket":
        s3.create_bucket(Bucket=args[0])
        return {}
    if cmd == "list":
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=args[0], Prefix=args[1] if len(args) > 1 else ""
        )
        return {"keys": [o["Key"] for p in pages for o in p.get("Contents", [])]}
    if cmd == "buckets":
        # Each BUCKET[:WHO]: create it and give it the policy WHO (see "policy"), if any;
        # one process for all of them.
        for spec in args:
            bucket, _, who = spec.partition(":")
            s3.create_bucket(Bucket=bucket)
            if who:
                run(s3, "policy", [bucket, who])
        return {}
    if cmd == "policy":
        # Ceph RGW's permissions, as SeaweedFS's identities give them: "public" (anonymous
        # and reader may read), "listable" (public, and anonymous may list) or "reader"
        # (reader only).
        bucket, who = args
        arn = f"arn:aws:s3:::{bucket}"
        read = ["s3:GetObject", "s3:GetObjectVersion"]
        statements = [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam:::user/reader"]},
                "Action": read + ["s3:ListBucket"],
                "Resource": [arn, arn + "/*"],
            }
        ]
        if who in ("public", "listable"):
            statements.append(
                {"Effect": "Allow", "Principal": "*", "Action": read, "Resource": [arn + "/*"]}
            )
        if who == "listable":
            statements.append(
                {"Effect": "Allow", "Principal": "*", "Action": ["s3:ListBucket"], "Resource": [arn]}
            )
        policy = {"Version": "2012-10-17", "Statement": statements}
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        return {}
    if cmd == "versioning":
        s3.put_bucket_versioning(
            Bucket=args[0], VersioningConfiguration={"Status": "Enabled"}
        )
        return {}
    if cmd == "put":
        bucket, key, path = args
        with open(path, "rb") as f:
            r = s3.put_object(Bucket=bucket, Key=key, Body=f.read())
        return {"etag": r["ETag"], "version_id": r.get("VersionId")}
    if cmd == "put-dir":
        # Every file of a local folder under PREFIX, in one process (benchmarks' directories).
        bucket, prefix, folder = args
        names = sorted(os.listdir(folder))
        for name in names:
            s3.upload_file(os.path.join(folder, name), bucket, prefix + name)
        return {"files": len(names)}
    if cmd == "put-multipart":
        bucket, key, path = args[:3]
        part = int(args[3]) if len(args) > 3 else 5 * 1024 * 1024
        cfg = boto3.s3.transfer.TransferConfig(
            multipart_threshold=part, multipart_chunksize=part
        )
        s3.upload_file(path, bucket, key, Config=cfg)
        return {"etag": s3.head_object(Bucket=bucket, Key=key)["ETag"]}
    if cmd == "put-multipart-split":
        # A multipart upload whose parts alternate between this endpoint and OTHER (two
        # replicas behind one load balancer); created and completed here.
        bucket, key, path, part, other = args
        part = int(part)
        second = client(other, s3._request_signer._credentials.access_key,
                        s3._request_signer._credentials.secret_key)
        with open(path, "rb") as f:
            data = f.read()
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = []
        for i, start in enumerate(range(0, len(data), part)):
            via = s3 if i % 2 == 0 else second
            r = via.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=i + 1,
                                Body=data[start:start + part])
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
        r = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                         MultipartUpload={"Parts": parts})
        return {"etag": r["ETag"], "parts": len(parts)}
    if cmd == "multipart-replaced":
        # Part 1 uploaded as A, then replaced by B through a presigned part URL (extra query
        # parameters, as browser uploads send), then the upload completed listing part 1 as
        # LISTED ("stale": A's ETag; "real": B's; "backwards": the parts in reverse order).
        # Returns the completion's answer, or the backend's refusal.
        bucket, key, a_path, b_path, tail_path, listed = args
        read = lambda p: open(p, "rb").read()
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        a = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=read(a_path))
        url = s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": 1},
            ExpiresIn=300,
        )
        import urllib.request
        req = urllib.request.Request(url, data=read(b_path), method="PUT")
        with urllib.request.urlopen(req) as r:
            b_etag = r.headers["ETag"]
        tail = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=2,
                              Body=read(tail_path))
        first = {"stale": a["ETag"], "real": b_etag, "backwards": b_etag}[listed]
        parts = [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": tail["ETag"]}]
        if listed == "backwards":
            parts.reverse()
        try:
            r = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                             MultipartUpload={"Parts": parts})
        except botocore.exceptions.ClientError as e:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            return {"refused": e.response["Error"]["Code"]}
        return {"etag": r["ETag"], "a": a["ETag"], "b": b_etag}
    if cmd == "put-ssec":
        bucket, key, path = args
        with open(path, "rb") as f:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=f.read(),
                SSECustomerAlgorithm="AES256",
                SSECustomerKey="k" * 32,
            )
        return {}
    if cmd == "get":
        bucket, key, path = args[:3]
        kwargs = {"Bucket": bucket, "Key": key}
        if len(args) > 3:
            kwargs["Range"] = args[3]
        r = s3.get_object(**kwargs)
        with open(path, "wb") as f:
            f.write(r["Body"].read())
        return {"etag": r["ETag"], "content_range": r.get("ContentRange")}
    if cmd == "torrent":
        bucket, key, path, *rest = args
        kwargs = {"Bucket": bucket, "Key": key}
        for opt in rest:
            name, value = opt.split("=", 1)
            kwargs[name] = value
        r = s3.get_object_torrent(**kwargs)
        with open(path, "wb") as f:
            f.write(r["Body"].read())
        h = r["ResponseMetadata"]["HTTPHeaders"]
        return {"status": r["ResponseMetadata"]["HTTPStatusCode"], "headers": h}
    if cmd == "presign-get":
        bucket, key, expires = args
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expires)
        )
        return {"url": url}
    if cmd == "presign-torrent":
        bucket, key, expires = args
        url = s3.generate_presigned_url(
            "get_object_torrent",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=int(expires),
        )
        return {"url": url}
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
