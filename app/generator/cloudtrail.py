"""AWS CloudTrail management events: mostly reads and role assumptions by automation, console
sign-ins, denied requests, and rarely defence evasion (a trail stopped, SSH opened to the
world)."""

from __future__ import annotations

from typing import Any

import orjson

from app.generator.fleet import ACCOUNT, ROLE_ARN, SECURITY_GROUPS, SERVICES, hex_id
from app.generator.source import Source


def _access_key(prefix: str, *parts: str) -> str:
    return prefix + hex_id(*parts, size=10).upper()[:16]


def _iam_user(name: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": _access_key("AIDA", "user", name),
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "accessKeyId": _access_key("AKIA", "key", name),
        "userName": name,
    }


def _assumed_role(role: str, session: str) -> dict[str, Any]:
    role_id = _access_key("AROA", "role", role)
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": _access_key("ASIA", "session", role, session),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": f"{ROLE_ARN}/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-01-01T00:00:00Z", "mfaAuthenticated": "false"},
        },
    }


#: CloudTrail principals: name -> userIdentity.
IDENTITIES = {
    "ci-deployer": _iam_user("ci-deployer"),
    "alice": _iam_user("alice"),
    "bob": _iam_user("bob"),
    "inventory": _assumed_role("vigil-inventory", "inventory-collector"),
    "eks-node": _assumed_role("eks-node-role", "i-0a1b2c3d4e5f60718"),
}


class CloudTrail(Source):
    """CloudTrail events of the account's principals (IDENTITIES)."""

    def event(self, ts_ms: int) -> bytes:
        """One CloudTrail event: mostly reads and role assumptions, rarely defence evasion."""
        rnd = self.rnd
        r = rnd.random()
        service = rnd.choice(SERVICES)
        if r < 0.33:
            return self._trail(
                ts_ms,
                "DescribeInstances",
                "ec2",
                "inventory",
                {"instancesSet": {}, "filterSet": {}},
                None,
                read_only=True,
            )
        if r < 0.43:
            params = {"groupSet": {"items": [{"groupId": SECURITY_GROUPS[service]}]}}
            return self._trail(
                ts_ms, "DescribeSecurityGroups", "ec2", "inventory", params, None, read_only=True
            )
        if r < 0.63:
            return self._assume_role(ts_ms, service)
        if r < 0.73:
            return self._trail(
                ts_ms, "GetCallerIdentity", "sts", "eks-node", None, None, read_only=True
            )
        if r < 0.81:
            return self._trail(
                ts_ms,
                "ListBuckets",
                "s3",
                "inventory",
                {"Host": "s3.amazonaws.com"},
                None,
                read_only=True,
            )
        if r < 0.90:
            return self._console_login(ts_ms, ok=rnd.random() < 0.7)
        if r < 0.995:
            return self._access_denied(ts_ms, service)
        if r < 0.9975:
            return self._trail(
                ts_ms,
                "StopLogging",
                "cloudtrail",
                "alice",
                {"name": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail"},
                None,
                read_only=False,
            )
        params = {
            "groupId": SECURITY_GROUPS[service],
            "ipPermissions": {
                "items": [
                    {
                        "ipProtocol": "tcp",
                        "fromPort": 22,
                        "toPort": 22,
                        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                    }
                ]
            },
        }
        response = {"requestId": self.uuid(), "_return": True}
        return self._trail(
            ts_ms, "AuthorizeSecurityGroupIngress", "ec2", "bob", params, response, read_only=False
        )

    def _assume_role(self, ts_ms: int, service: str) -> bytes:
        session = f"gha-{service}-{self.rnd.randint(1000, 9999)}"
        params = {
            "roleArn": f"{ROLE_ARN}/{service}-deploy",
            "roleSessionName": session,
            "durationSeconds": 3600,
        }
        response = {
            "credentials": {
                "accessKeyId": _access_key("ASIA", session),
                "expiration": "Jan 1, 2030, 12:00:00 AM",
            },
            "assumedRoleUser": {
                "assumedRoleId": f"{_access_key('AROA', 'role', service)}:{session}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{service}-deploy/{session}",
            },
        }
        return self._trail(
            ts_ms, "AssumeRole", "sts", "ci-deployer", params, response, read_only=False
        )

    def _console_login(self, ts_ms: int, ok: bool) -> bytes:
        user = self.rnd.choice(("alice", "bob"))
        extra: dict[str, Any] = {
            "additionalEventData": {
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes" if self.rnd.random() < 0.9 else "No",
            },
            "eventType": "AwsConsoleSignIn",
        }
        if not ok:
            extra["errorMessage"] = "Failed authentication"
        response = {"ConsoleLogin": "Success" if ok else "Failure"}
        return self._trail(
            ts_ms, "ConsoleLogin", "signin", user, None, response, read_only=False, extra=extra
        )

    def _access_denied(self, ts_ms: int, service: str) -> bytes:
        user = self.rnd.choice(("bob", "ci-deployer"))
        if self.rnd.random() < 0.5:
            name, source, action = (
                "GetSecretValue",
                "secretsmanager",
                "secretsmanager:GetSecretValue",
            )
            params: dict[str, Any] = {"secretId": f"prod/{service}/db"}
            code = "AccessDenied"
        else:
            name, source, action = "RunInstances", "ec2", "ec2:RunInstances"
            params = {"instanceType": "p4d.24xlarge", "minCount": 1, "maxCount": 4}
            code = "Client.UnauthorizedOperation"
        message = (
            f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action} "
            "because no identity-based policy allows the action"
        )
        extra = {"errorCode": code, "errorMessage": message}
        return self._trail(ts_ms, name, source, user, params, None, read_only=False, extra=extra)

    def _trail(
        self,
        ts_ms: int,
        name: str,
        service: str,
        principal: str,
        params: dict[str, Any] | None,
        response: dict[str, Any] | None,
        *,
        read_only: bool,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        region = "us-east-1" if service in ("signin", "s3") else "eu-west-1"
        human = principal in ("alice", "bob")
        event: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": IDENTITIES[principal],
            "eventTime": self.clock.seconds(ts_ms),
            "eventSource": f"{service}.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": "203.0.113.24" if human else "10.0.3.41",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
            if human
            else "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1",
            "requestParameters": params,
            "responseElements": response,
            "requestID": self.uuid(),
            "eventID": self.uuid(),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
        }
        if extra:
            event.update(extra)
        return orjson.dumps(event)
