"""Sets up moto's SES emulator for Postern's SES adapter tests, with boto3.

    ses_moto.py setup ENDPOINT DOMAIN
        Spends moto's unauthenticated calls (INITIAL_NO_AUTH_ACTION_COUNT=4): creates an IAM
        user, gives it ses:*, creates its access key and verifies DOMAIN as a sending
        identity. Prints {"access_key_id", "secret_access_key"} as JSON. From then on moto
        checks every request's SigV4 signature.
    ses_moto.py quota ENDPOINT KEY_ID SECRET
        Prints SES GetSendQuota (SentLast24Hours counts what moto delivered).
"""
import json
import sys

import boto3

REGION = "us-east-1"


def client(service, endpoint, key="testing", secret="testing"):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def setup(endpoint, domain):
    iam = client("iam", endpoint)
    iam.create_user(UserName="postern")
    iam.put_user_policy(
        UserName="postern",
        PolicyName="send",
        PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ses:*", "Resource": "*"}],
        }),
    )
    key = iam.create_access_key(UserName="postern")["AccessKey"]
    client("ses", endpoint).verify_domain_identity(Domain=domain)
    print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}))


def quota(endpoint, key, secret):
    q = client("ses", endpoint, key, secret).get_send_quota()
    q.pop("ResponseMetadata", None)
    print(json.dumps(q))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(sys.argv[2], sys.argv[3])
    elif cmd == "quota":
        quota(*sys.argv[2:5])
    else:
        sys.exit("unknown command %r" % cmd)
