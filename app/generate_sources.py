"""The source families of `vigil generate` besides Falco and JSON metric samples.

`Sources` builds one raw record (bytes) per call, in the tool's own format, modelled on the real
samples in shared/fixtures (smaller): Trivy and Semgrep SARIF scans, GitHub and GitLab webhooks,
Kubernetes audit events, CloudTrail events, `terraform show -json` plans, Alertmanager webhooks,
Fluent Bit log records and Prometheus text exposition. The record's event time is written into
the field its adapter reads (`CreatedAt`, `updated_at`, `stageTimestamp`, `eventTime`, ...).

Deterministic: every choice comes from the generator's `random.Random`, fixed identifiers from
hashlib, times from the `ts_ms` passed in. State is kept in lists and dicts only (never sets of
strings, whose order changes between processes).
"""

from __future__ import annotations

import functools
import hashlib
import random
from datetime import UTC, datetime
from typing import Any

import orjson

from app.generate_scenarios import SCENARIOS, with_alerts, with_incidents
from app.model.fingerprints import alertmanager_fingerprint

HOSTS = ("node-a", "node-b", "node-c", "node-d")
SERVICES = ("payments", "checkout", "search", "auth")
#: The services that raise Alertmanager alerts and those whose metrics spike (scenarios).
ALERTING = with_alerts(SERVICES)
#: The services people exec into (a medium compliance violation each time).
EXEC_SERVICES = tuple(s for s in SERVICES if SCENARIOS[s].pod_exec)
INCIDENT_SERVICES = with_incidents(SERVICES)
IMAGES = {service: f"registry.example.com/{service}" for service in SERVICES}
#: payments and checkout build on GitHub Actions, search and auth on GitLab CI.
GITHUB_SERVICES = ("payments", "checkout")
STACKS = {"payments": "java", "checkout": "go", "search": "python", "auth": "node"}
ACCOUNT = "493817265094"
NAMESPACE = "prod"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.lru_cache(maxsize=1024)
def _hex(*parts: str, size: int = 20) -> str:
    """A fixed hex identifier derived from `parts` (`size` bytes)."""
    return hashlib.blake2b("/".join(parts).encode(), digest_size=size).hexdigest()


def _number(*parts: str, modulo: int = 10**9) -> int:
    return int(_hex(*parts, size=8), 16) % modulo


def _pod(service: str, index: int) -> dict[str, str]:
    rs = _hex(service, "rs", size=5)[:10]
    suffix = _hex(service, str(index), size=3)[:5]
    return {
        "name": f"{service}-{rs}-{suffix}",
        "id": _uuid_text(_hex(service, str(index), "uid", size=16)),
        "docker_id": _hex(service, str(index), "container", size=32),
        "host": HOSTS[(index + SERVICES.index(service)) % len(HOSTS)],
        "ip": f"10.42.{SERVICES.index(service) + 1}.{10 + index}",
        "hash": rs,
    }


def _uuid_text(hex32: str) -> str:
    h = hex32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


PODS = {service: [_pod(service, i) for i in range(3)] for service in SERVICES}


class Clock:
    """Formats event times, caching the formatted second (many records share one)."""

    def __init__(self) -> None:
        self._iso: dict[int, str] = {}

    def _second(self, ts_ms: int) -> str:
        second = ts_ms // 1000
        text = self._iso.get(second)
        if text is None:
            if len(self._iso) > 4096:
                self._iso.clear()
            text = self._iso[second] = f"{datetime.fromtimestamp(second, tz=UTC):%Y-%m-%dT%H:%M:%S}"
        return text

    def seconds(self, ts_ms: int) -> str:
        """`2024-05-01T12:00:00Z` (CloudTrail, GitHub, Terraform)."""
        return self._second(ts_ms) + "Z"

    def millis(self, ts_ms: int) -> str:
        return f"{self._second(ts_ms)}.{ts_ms % 1000:03d}Z"

    def micros(self, ts_ms: int) -> str:
        """`...12:00:00.123000Z` (Kubernetes audit, Fluent Bit)."""
        return f"{self._second(ts_ms)}.{ts_ms % 1000:03d}000Z"

    def nanos(self, ts_ms: int) -> str:
        return f"{self._second(ts_ms)}.{ts_ms % 1000:03d}000000Z"

    def gitlab(self, ts_ms: int) -> str:
        """`2024-05-01 12:00:00 UTC`."""
        iso = self._second(ts_ms)
        return f"{iso[:10]} {iso[11:]} UTC"

    def apache(self, ts_ms: int) -> str:
        """`01/May/2024:12:00:00 +0000` (common log format)."""
        iso = self._second(ts_ms)  # 2024-05-01T12:00:00
        return f"{iso[8:10]}/{_MONTHS[int(iso[5:7]) - 1]}/{iso[:4]}:{iso[11:]} +0000"


# ---- scans: Trivy and Semgrep SARIF -------------------------------------------------------

#: (id, package, installed, fixed or "", severity, CVSS v3, vector, title, CWE, published, EPSS,
#: CISA KEV dateAdded or "", knownRansomwareCampaignUse)
Cve = tuple[str, str, str, str, str, float, str, str, str, str, float, str, str]
_NET_HIGH = "AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
_NET_CRIT = "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
OS_CVES: tuple[Cve, ...] = (
    ("CVE-2023-5363", "libcrypto3", "3.1.2-r0", "3.1.4-r0", "HIGH", 7.5,
     "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
     "openssl: Incorrect cipher key and IV length processing", "", "2023-10-25T18:17:43Z",
     0.0021, "", ""),
    ("CVE-2023-38545", "curl", "8.3.0-r0", "8.4.0-r0", "CRITICAL", 9.8, _NET_CRIT,
     "curl: heap based buffer overflow in the SOCKS5 proxy handshake", "CWE-787",
     "2023-10-18T04:15:11Z", 0.2431, "", ""),
    ("CVE-2023-38546", "libcurl", "8.3.0-r0", "8.4.0-r0", "LOW", 3.7,
     "AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:N", "curl: cookie injection with none file", "CWE-73",
     "2023-10-18T04:15:11Z", 0.0013, "", ""),
    ("CVE-2023-45853", "zlib", "1.2.13-r1", "", "CRITICAL", 9.8, _NET_CRIT,
     "zlib: integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_6",
     "CWE-190", "2023-10-14T02:15:09Z", 0.0069, "", ""),
    ("CVE-2024-6119", "libssl3", "3.1.2-r0", "3.1.7-r0", "HIGH", 7.5, _NET_HIGH,
     "openssl: Possible denial of service in X.509 name checks", "CWE-843",
     "2024-09-03T16:15:07Z", 0.0045, "", ""),
    ("CVE-2024-2511", "libssl3", "3.1.2-r0", "3.1.4-r6", "MEDIUM", 5.9,
     "AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
     "openssl: Unbounded memory growth with session handling in TLSv1.3", "CWE-1325",
     "2024-04-08T14:15:07Z", 0.0033, "", ""),
    ("CVE-2023-42363", "busybox", "1.36.1-r2", "1.36.1-r4", "MEDIUM", 5.5,
     "AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", "busybox: use-after-free in awk", "CWE-416",
     "2023-11-27T23:15:07Z", 0.0004, "", ""),
)  # fmt: skip
LANG_CVES: dict[str, tuple[Cve, ...]] = {
    "python": (
        ("CVE-2024-35195", "requests", "2.31.0", "2.32.0", "MEDIUM", 5.6,
         "AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N",
         "requests: subsequent requests to the same host ignore cert verification", "CWE-670",
         "2024-05-20T21:15:09Z", 0.0005, "", ""),
        ("CVE-2022-40897", "setuptools", "65.5.0", "65.5.1", "MEDIUM", 5.9,
         "AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
         "pypa-setuptools: Regular Expression Denial of Service (ReDoS) in package_index.py",
         "CWE-1333", "2022-12-23T00:15:13Z", 0.0027, "", ""),
        ("CVE-2024-1135", "gunicorn", "21.2.0", "22.0.0", "HIGH", 7.5,
         "AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N",
         "python-gunicorn: HTTP Request Smuggling due to improper validation of "
         "Transfer-Encoding headers", "CWE-444", "2024-04-16T00:15:08Z", 0.0018, "", ""),
    ),
    "go": (
        ("CVE-2023-44487", "golang.org/x/net", "v0.15.0", "0.17.0", "HIGH", 7.5, _NET_HIGH,
         "HTTP/2: Multiple HTTP/2 enabled web servers are vulnerable to a DDoS attack "
         "(Rapid Reset Attack)", "CWE-400", "2023-10-10T14:15:10Z", 0.8169, "2023-10-10",
         "Unknown"),
        ("CVE-2024-24790", "stdlib", "v1.21.5", "1.21.11, 1.22.4", "CRITICAL", 9.8, _NET_CRIT,
         "golang: net/netip: Unexpected behavior from Is methods for IPv4-mapped IPv6 "
         "addresses", "CWE-180", "2024-06-05T16:15:10Z", 0.0011, "", ""),
        ("CVE-2023-45288", "golang.org/x/net", "v0.15.0", "0.23.0", "HIGH", 7.5, _NET_HIGH,
         "golang: net/http, x/net/http2: unlimited number of CONTINUATION frames causes DoS",
         "CWE-770", "2024-04-04T21:15:16Z", 0.0105, "", ""),
    ),
    "java": (
        ("CVE-2021-44228", "org.apache.logging.log4j:log4j-core", "2.14.1", "2.15.0",
         "CRITICAL", 10.0, "AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
         "log4j-core: Remote code execution in Log4j 2.x when logs contain an "
         "attacker-controlled string value", "CWE-502", "2021-12-10T10:15:09Z", 0.9447,
         "2021-12-10", "Known"),
        ("CVE-2022-22965", "org.springframework:spring-beans", "5.3.17", "5.3.18", "CRITICAL",
         9.8, _NET_CRIT, "spring-framework: RCE via Data Binding on JDK 9+", "CWE-94",
         "2022-04-01T23:15:13Z", 0.9745, "2022-04-04", "Unknown"),
        ("CVE-2022-42003", "com.fasterxml.jackson.core:jackson-databind", "2.13.3", "2.13.4.2",
         "HIGH", 7.5, _NET_HIGH,
         "jackson-databind: deep wrapper array nesting wrt UNWRAP_SINGLE_VALUE_ARRAYS",
         "CWE-502", "2022-10-02T05:15:09Z", 0.0062, "", ""),
    ),
    "node": (
        ("CVE-2024-29041", "express", "4.18.2", "4.19.2", "MEDIUM", 6.1,
         "AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "express: cause malformed URLs to be evaluated",
         "CWE-601", "2024-03-25T21:15:46Z", 0.0009, "", ""),
        ("CVE-2022-25883", "semver", "7.5.1", "7.5.2", "HIGH", 7.5, _NET_HIGH,
         "nodejs-semver: Regular expression denial of service", "CWE-1333",
         "2023-06-21T05:15:09Z", 0.0031, "", ""),
        ("CVE-2022-23540", "jsonwebtoken", "8.5.1", "9.0.0", "HIGH", 7.6,
         "AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:H/A:L",
         "jsonwebtoken: Insecure default algorithm in jwt.verify() could lead to signature "
         "validation bypass", "CWE-287", "2022-12-22T19:15:09Z", 0.0016, "", ""),
    ),
}  # fmt: skip
#: (Trivy Target, Type, PURL type, PkgPath template or "") of each stack's language result.
LANG_RESULT = {
    "python": ("Python", "python-pkg", "pypi",
               "usr/local/lib/python3.11/site-packages/{name}-{version}.dist-info/METADATA"),
    "go": ("usr/local/bin/{service}", "gobinary", "golang", ""),
    "java": ("Java", "jar", "maven", "app/lib/{short}-{version}.jar"),
    "node": ("Node.js", "node-pkg", "npm", "app/node_modules/{name}/package.json"),
}  # fmt: skip

#: Semgrep rules per stack: (id, message, level, CWE tag, path, line).
SEMGREP_RULES = {
    "python": (
        ("python.lang.security.audit.formatted-sql-query.formatted-sql-query",
         "Detected possible formatted SQL query. Use parameterized queries instead.", "error",
         "CWE-89: Improper Neutralization of Special Elements used in an SQL Command",
         "src/{service}/repository.py", 88),
        ("python.lang.security.audit.subprocess-shell-true.subprocess-shell-true",
         "Found 'subprocess' function 'run' with 'shell=True'. This is dangerous because this "
         "call will spawn the command using a shell process.", "error",
         "CWE-78: Improper Neutralization of Special Elements used in an OS Command",
         "src/{service}/reports.py", 41),
    ),
    "go": (
        ("go.lang.security.audit.crypto.math_random.math-random-used",
         "Do not use 'math/rand'. Use 'crypto/rand' instead.", "warning",
         "CWE-338: Use of Cryptographically Weak Pseudo-Random Number Generator (PRNG)",
         "internal/cart/token.go", 17),
        ("go.lang.security.audit.net.use-tls.use-tls",
         "Found an HTTP server without TLS. Use 'http.ListenAndServeTLS' instead.", "warning",
         "CWE-319: Cleartext Transmission of Sensitive Information", "cmd/checkout/main.go", 52),
    ),
    "java": (
        ("java.lang.security.audit.formatted-sql-string.formatted-sql-string",
         "Detected a formatted string in a SQL statement. This could lead to SQL injection.",
         "error", "CWE-89: Improper Neutralization of Special Elements used in an SQL Command",
         "src/main/java/com/acme/{service}/QueryBuilder.java", 133),
        ("java.lang.security.audit.xxe.documentbuilderfactory-disallow-doctype-decl-missing."
         "documentbuilderfactory-disallow-doctype-decl-missing",
         "DOCTYPE declarations are enabled for this DocumentBuilderFactory.", "warning",
         "CWE-611: Improper Restriction of XML External Entity Reference",
         "src/main/java/com/acme/{service}/FeedImporter.java", 64),
    ),
    "node": (
        ("javascript.express.security.audit.xss.direct-response-write.direct-response-write",
         "Detected directly writing to a Response object from user-defined input.", "warning",
         "CWE-79: Improper Neutralization of Input During Web Page Generation",
         "src/routes/login.js", 29),
        ("javascript.jsonwebtoken.security.jwt-hardcode.hardcoded-jwt-secret",
         "A hard-coded credential was detected. It is not recommended to store credentials in "
         "source-code.", "error", "CWE-798: Use of Hard-coded Credentials", "src/auth/jwt.js", 9),
    ),
}  # fmt: skip


def _vulnerability(service: str, cve: Cve, os_pkg: bool, enriched: bool) -> dict[str, Any]:
    cve_id, pkg, installed, fixed, severity, score, vector, title, cwe, published, epss = cve[:11]
    kev_added, ransomware = cve[11], cve[12]
    stack = STACKS[service]
    if os_pkg:
        purl = f"pkg:apk/alpine/{pkg}@{installed}?arch=x86_64&distro=3.18.4"
        pkg_path = ""
    else:
        _, _, purl_type, path = LANG_RESULT[stack]
        purl_name = pkg.replace(":", "/") if purl_type == "maven" else pkg
        purl = f"pkg:{purl_type}/{purl_name}@{installed}"
        short = pkg.rsplit(":", 1)[-1]
        pkg_path = path.format(name=pkg, short=short, version=installed, service=service)
    vuln: dict[str, Any] = {
        "VulnerabilityID": cve_id,
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": purl},
        "InstalledVersion": installed,
    }
    if pkg_path:
        vuln["PkgPath"] = pkg_path
    if fixed:
        vuln["FixedVersion"] = fixed
    vuln["Status"] = "fixed" if fixed else "affected"
    vuln.update(
        {
            "SeveritySource": "nvd",
            "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve_id.lower()}",
            "Title": title,
            "Severity": severity,
            "CweIDs": [cwe] if cwe else [],
            "CVSS": {"nvd": {"V3Vector": f"CVSS:3.1/{vector}", "V3Score": score}},
            "PublishedDate": published,
            "LastModifiedDate": published,
        }
    )
    if enriched:
        vuln["EPSS"] = {"Score": epss, "Percentile": round(min(0.9999, 0.35 + epss), 4)}
        if kev_added:
            vuln["KEV"] = {"dateAdded": kev_added, "knownRansomwareCampaignUse": ransomware}
    return vuln


# ---- CI: GitHub Actions and GitLab CI -----------------------------------------------------

#: (workflow, path, jobs, failure probability); {lang} is the service's CodeQL language.
WORKFLOWS = (
    ("CI", ".github/workflows/ci.yml", ("build", "unit-tests", "lint"), 0.06),
    ("CodeQL", ".github/workflows/codeql.yml", ("Analyze ({lang})",), 0.12),
    ("security", ".github/workflows/security.yml", ("trivy-scan", "gitleaks"), 0.15),
)
CODEQL_LANG = {"python": "python", "go": "go", "java": "java-kotlin", "node": "javascript"}
GITLAB_JOBS = (
    ("build", "build-image"),
    ("test", "unit-tests"),
    ("security", "trivy-scan"),
    ("security", "semgrep-sast"),
    ("deploy", "deploy-production"),
)
DEVELOPERS = ("alice", "bob", "carol", "dave", "erin")
#: A commit is deployed this long after its security scan passed, at the earliest.
DEPLOY_AFTER_SCAN_MS = 20_000
FEATURES = ("retry-backoff", "new-checkout-flow", "bump-deps", "refactor-auth", "fix-flaky-test")
COMMIT_TITLES = (
    "Fix retry on idempotency key conflict",
    "Bump dependencies",
    "Add request timeout to upstream client",
    "Refactor config loading",
    "Log correlation id on errors",
    "Update base image to alpine 3.18.4",
)


def _github_repository(service: str) -> dict[str, Any]:
    return {
        "id": _number("github", service),
        "node_id": "R_kgDO" + _hex("github", service, size=4),
        "name": service,
        "full_name": f"acme/{service}",
        "private": True,
        "owner": {"login": "acme", "id": 90210731, "type": "Organization"},
        "html_url": f"https://github.com/acme/{service}",
        "default_branch": "main",
    }


def _gitlab_project(service: str) -> dict[str, Any]:
    web = f"https://gitlab.acme.example/acme/{service}"
    return {
        "id": _number("gitlab", service, modulo=10**5),
        "name": service,
        "description": "",
        "web_url": web,
        "avatar_url": None,
        "git_ssh_url": f"git@gitlab.acme.example:acme/{service}.git",
        "git_http_url": f"{web}.git",
        "namespace": "acme",
        "visibility_level": 0,
        "path_with_namespace": f"acme/{service}",
        "default_branch": "main",
        "homepage": web,
    }


REPOSITORIES = {s: _github_repository(s) for s in GITHUB_SERVICES}
PROJECTS = {s: _gitlab_project(s) for s in SERVICES if s not in GITHUB_SERVICES}


# ---- Kubernetes audit, CloudTrail ---------------------------------------------------------

KUBECTL = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"
ARGOCD = "system:serviceaccount:argocd:argocd-application-controller"
RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
SA_GROUPS = ["system:serviceaccounts", "system:authenticated"]
HUMAN_GROUPS = ["oidc:developers", "system:authenticated"]
#: (resource, apiGroup, apiVersion) for objectRef and the request URI.
K8S_RESOURCES = {
    "pods": ("", "v1"),
    "secrets": ("", "v1"),
    "configmaps": ("", "v1"),
    "deployments": ("apps", "v1"),
    "clusterrolebindings": ("rbac.authorization.k8s.io", "v1"),
}
#: CloudTrail principals: name -> userIdentity.
_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role"


def _access_key(prefix: str, *parts: str) -> str:
    return prefix + _hex(*parts, size=10).upper()[:16]


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
                "arn": f"{_ROLE_ARN}/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-01-01T00:00:00Z", "mfaAuthenticated": "false"},
        },
    }


IDENTITIES = {
    "ci-deployer": _iam_user("ci-deployer"),
    "alice": _iam_user("alice"),
    "bob": _iam_user("bob"),
    "inventory": _assumed_role("vigil-inventory", "inventory-collector"),
    "eks-node": _assumed_role("eks-node-role", "i-0a1b2c3d4e5f60718"),
}
SECURITY_GROUPS = {s: "sg-0" + _hex("sg", s, size=8)[:16] for s in SERVICES}


# ---- Alertmanager, logs -------------------------------------------------------------------

#: (alertname, severity, summary, description, expression)
ALERTS = (
    (
        "HighErrorRate",
        "critical",
        "High HTTP 5xx ratio on {service}",
        "{service} returns more than 5% 5xx responses over the last 5 minutes.",
        'sum(rate(http_requests_total{{job="{service}",code=~"5.."}}[5m])) / '
        'sum(rate(http_requests_total{{job="{service}"}}[5m])) > 0.05',
    ),
    (
        "HighLatencyP99",
        "warning",
        "p99 latency above 500ms on {service}",
        "{service} p99 latency has been above 500ms for 10 minutes.",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket"
        '{{job="{service}"}}[5m]))) > 0.5',
    ),
    (
        "KubePodCrashLooping",
        "warning",
        "Pod is crash looping.",
        'Pod prod/{pod} ({service}) is in waiting state (reason: "CrashLoopBackOff").',
        'max_over_time(kube_pod_container_status_waiting_reason{{reason="CrashLoopBackOff",'
        'namespace="prod"}}[5m]) >= 1',
    ),
)
ROUTES = {
    "payments": (("POST", "/api/v1/payments"), ("GET", "/api/v1/payments/{id}"),
                 ("POST", "/api/v1/refunds")),
    "checkout": (("POST", "/api/v1/checkout"), ("GET", "/api/v1/cart/{id}"),
                 ("PUT", "/api/v1/cart/{id}/items")),
    "search": (("GET", "/api/v1/search?q=shoes&page={id}"), ("GET", "/api/v1/suggest?q=sh"),
               ("GET", "/api/v1/products/{id}")),
    "auth": (("POST", "/oauth/token"), ("GET", "/.well-known/jwks.json"), ("POST", "/login")),
}  # fmt: skip
#: HTTP statuses of normal traffic, 1000 slots: 80% 200, ..., 0.3% 500.
_STATUSES = [200] * 800 + [201] * 60 + [204] * 20 + [304] * 30 + [400] * 25 + [401] * 20
_STATUSES += [404] * 30 + [429] * 12 + [500] * 3
_ERRORS = (500, 502, 503, 503, 504)
_AGENTS = ("Go-http-client/1.1", "okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0")
_CLIENTS = [f"10.42.{i % 8}.{17 + i * 7 % 230}" for i in range(64)]
APP_MESSAGES = (
    ("info", "request completed"),
    ("info", "cache refreshed"),
    ("warn", "slow query detected duration_ms=812"),
    ("info", "connection pool resized size=20"),
)


class Sources:
    """Builds the raw records of the non-runtime families, with the little state they need."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.clock = Clock()
        self._patch = {service: 2 for service in SERVICES}
        self.versions = {service: "1.4.2" for service in SERVICES}
        self._scanned: set[str] = set()
        #: service -> the latest commit a security job passed on (what gets deployed)
        self._scanned_commits: dict[str, list[tuple[int, str]]] = {}
        self._firing: list[dict[str, Any]] = []  # webhook payloads, oldest first
        self._alert_hint: str | None = None
        self._serial = rnd.randrange(10**8, 9 * 10**8)
        self._requests: dict[str, int] = {}
        self.forbidden_left = 0
        self._forbidden_user = ""
        self._error_left = 0
        self._error_service = INCIDENT_SERVICES[0]

    # -- shared helpers ------------------------------------------------------------------

    def version(self, service: str) -> str:
        """The image tag running in production (a successful deployment bumps the patch)."""
        return self.versions[service]

    def _next_id(self) -> int:
        self._serial += self.rnd.randint(1, 97)
        return self._serial

    def _uuid(self) -> str:
        return _uuid_text(f"{self.rnd.getrandbits(128):032x}")

    def _sha(self) -> str:
        return f"{self.rnd.getrandbits(160):040x}"

    def incident(self, service: str) -> None:
        """A metric spike started: a burst of 5xx logs and, soon, a HighErrorRate alert."""
        self._error_left, self._error_service = self.rnd.randint(40, 150), service
        self._alert_hint = service

    # -- scans ---------------------------------------------------------------------------

    def scan(self, ts_ms: int) -> bytes:
        """A Trivy image report (4 in 5), else a Semgrep SARIF log."""
        if self.rnd.random() < 0.8:
            return self._trivy(ts_ms)
        return self._sarif(ts_ms)

    def _trivy(self, ts_ms: int) -> bytes:
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        stack = STACKS[service]
        scenario = SCENARIOS[service]
        known = {c[0]: c for c in (*OS_CVES, *LANG_CVES[stack])}
        first = service not in self._scanned
        self._scanned.add(service)
        ids = (*scenario.cves, *scenario.fixed_cves) if first else scenario.cves
        found = sorted(known[cve_id] for cve_id in ids)
        enriched = scenario.enriched or rnd.random() < 0.3
        version = self.version(service)
        reference = f"{IMAGES[service]}:{version}"
        digest = _hex(service, version, size=32)
        os_target = f"{reference} (alpine 3.18.4)"
        lang_target = LANG_RESULT[stack][0].format(service=service)
        os_vulns = [_vulnerability(service, c, True, enriched) for c in found if c in OS_CVES]
        lang_vulns = [
            _vulnerability(service, c, False, enriched) for c in found if c not in OS_CVES
        ]
        os_result: dict[str, Any] = {"Target": os_target, "Class": "os-pkgs", "Type": "alpine"}
        lang_result: dict[str, Any] = {
            "Target": lang_target,
            "Class": "lang-pkgs",
            "Type": LANG_RESULT[stack][1],
        }
        if os_vulns:
            os_result["Vulnerabilities"] = os_vulns
        if lang_vulns:
            lang_result["Vulnerabilities"] = lang_vulns
        report = {
            "SchemaVersion": 2,
            "Trivy": {"Version": "0.50.1"},
            "ReportID": self._uuid(),
            "CreatedAt": self.clock.nanos(ts_ms),
            "ArtifactID": f"sha256:{_hex(service, version, 'config', size=32)}",
            "ArtifactName": reference,
            "ArtifactType": "container_image",
            "Metadata": {
                "OS": {"Family": "alpine", "Name": "3.18.4"},
                "ImageID": f"sha256:{_hex(service, version, 'config', size=32)}",
                "RepoTags": [reference],
                "RepoDigests": [f"{IMAGES[service]}@sha256:{digest}"],
                "ImageConfig": {"architecture": "amd64", "os": "linux"},
            },
            "Results": [os_result, lang_result],
        }
        return orjson.dumps(report)

    def _sarif(self, ts_ms: int) -> bytes:
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        rules = SEMGREP_RULES[STACKS[service]]
        results = []
        for index, (rule_id, message, level, _cwe, path, line) in enumerate(rules):
            path = path.format(service=service)
            if rnd.random() < 0.3 or not SCENARIOS[service].sast:
                continue  # fixed, or not reached this run
            results.append(
                {
                    "ruleId": rule_id,
                    "ruleIndex": index,
                    "level": level,
                    "message": {"text": message},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"},
                                "region": {"startLine": line, "endLine": line + 2},
                            }
                        }
                    ],
                    "fingerprints": {"matchBasedId/v1": _hex(service, rule_id, path, size=32)},
                    "properties": {},
                }
            )
        host = "github.com" if service in GITHUB_SERVICES else "gitlab.acme.example"
        log = {
            "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "Semgrep OSS",
                            "semanticVersion": "1.56.0",
                            "informationUri": "https://semgrep.dev",
                            "rules": [_semgrep_rule(*rule) for rule in rules],
                        }
                    },
                    "invocations": [
                        {
                            "executionSuccessful": True,
                            "toolExecutionNotifications": [],
                            "endTimeUtc": self.clock.millis(ts_ms),
                        }
                    ],
                    "versionControlProvenance": [
                        {
                            "repositoryUri": f"https://{host}/acme/{service}",
                            "revisionId": self._sha(),
                            "branch": "main",
                        }
                    ],
                    "results": results,
                }
            ],
        }
        return orjson.dumps(log)

    # -- CI --------------------------------------------------------------------------------

    def ci(self, ts_ms: int) -> bytes:
        """A deployment (1 in 8), else a GitHub workflow run/job or a GitLab pipeline."""
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        github = service in GITHUB_SERVICES
        if rnd.random() < 0.125 and (sha := self._deployable(service, ts_ms)) is not None:
            body = self._deployment(service, ts_ms, github, sha)
        elif not github:
            body = self._gitlab_pipeline(service, ts_ms)
        elif rnd.random() < 0.45:
            body = self._workflow_run(service, ts_ms)
        else:
            body = self._workflow_job(service, ts_ms)
        return orjson.dumps(body)

    def _workflow(self, service: str) -> tuple[str, str, str, bool]:
        """(workflow, path, job name, failed) of a random workflow run."""
        rnd = self.rnd
        name, path, jobs, failure = WORKFLOWS[rnd.choices((0, 1, 2), (6, 2, 2))[0]]
        job = rnd.choice(jobs).format(lang=CODEQL_LANG[STACKS[service]])
        return name, path, job, rnd.random() < failure

    def _branch(self, failed: bool) -> str:
        """Main branches stay green: failed runs are on feature branches."""
        return f"feature/{self.rnd.choice(FEATURES)}" if failed else "main"

    def _workflow_run(self, service: str, ts_ms: int) -> dict[str, Any]:
        rnd, clock = self.rnd, self.clock
        workflow, path, _job, failed = self._workflow(service)
        run_id, sha, actor = self._next_id(), self._sha(), rnd.choice(DEVELOPERS)
        if not failed and workflow != "CI":
            self._scan_passed(service, ts_ms, sha)
        started = ts_ms - rnd.randint(40, 900) * 1000
        url = f"https://github.com/acme/{service}/actions/runs/{run_id}"
        repository = REPOSITORIES[service]
        title = rnd.choice(COMMIT_TITLES)
        run = {
            "id": run_id,
            "name": workflow,
            "head_branch": self._branch(failed),
            "head_sha": sha,
            "path": path,
            "display_title": title,
            "run_number": run_id % 5000,
            "event": "push",
            "status": "completed",
            "conclusion": "failure" if failed else "success",
            "workflow_id": _number(service, workflow, modulo=10**8),
            "check_suite_id": run_id * 3,
            "html_url": url,
            "pull_requests": [],
            "created_at": clock.seconds(started),
            "updated_at": clock.seconds(ts_ms),
            "actor": {"login": actor, "type": "User"},
            "run_attempt": 1,
            "run_started_at": clock.seconds(started),
            "head_commit": {"id": sha, "message": title, "author": {"name": actor}},
            "repository": {"id": repository["id"], "full_name": repository["full_name"]},
        }
        return {
            "action": "completed",
            "workflow_run": run,
            "workflow": {"id": run["workflow_id"], "name": workflow, "path": path},
            "repository": repository,
            "organization": {"login": "acme", "id": 90210731},
            "sender": {"login": actor, "type": "User"},
        }

    def _workflow_job(self, service: str, ts_ms: int) -> dict[str, Any]:
        rnd, clock = self.rnd, self.clock
        workflow, _path, job, failed = self._workflow(service)
        job_id, run_id, sha = self._next_id(), self._next_id(), self._sha()
        if not failed and workflow != "CI":
            self._scan_passed(service, ts_ms, sha)
        started = ts_ms - rnd.randint(20, 600) * 1000
        main_step = "Run " + job if job in ("trivy-scan", "gitleaks") else "Run make " + job
        if job.startswith("Analyze"):
            main_step = "Perform CodeQL Analysis"
        steps = [("Set up job", "success"), ("Run actions/checkout@v4", "success")]
        steps += [(main_step, "failure" if failed else "success")]
        steps += [("Complete job", "success")]
        return {
            "action": "completed",
            "workflow_job": {
                "id": job_id,
                "run_id": run_id,
                "run_attempt": 1,
                "head_sha": sha,
                "head_branch": self._branch(failed),
                "html_url": f"https://github.com/acme/{service}/actions/runs/{run_id}/job/{job_id}",
                "status": "completed",
                "conclusion": "failure" if failed else "success",
                "created_at": clock.seconds(started - 4000),
                "started_at": clock.seconds(started),
                "completed_at": clock.seconds(ts_ms),
                "name": job,
                "steps": [
                    {"name": name, "status": "completed", "conclusion": result, "number": i + 1}
                    for i, (name, result) in enumerate(steps)
                ],
                "labels": ["ubuntu-latest"],
                "runner_name": f"GitHub Actions {job_id % 90 + 2}",
                "runner_group_name": "GitHub Actions",
                "workflow_name": workflow,
            },
            "repository": REPOSITORIES[service],
            "organization": {"login": "acme", "id": 90210731},
            "sender": {"login": rnd.choice(DEVELOPERS), "type": "User"},
        }

    def _scan_passed(self, service: str, ts_ms: int, sha: str) -> None:
        """A security job passed on `sha` at `ts_ms`."""
        self._scanned_commits.setdefault(service, []).append((ts_ms, sha))

    def _deployable(self, service: str, ts_ms: int) -> str | None:
        """The newest commit whose security scan passed at least `DEPLOY_AFTER_SCAN_MS` ago
        (older ones are forgotten)."""
        scans = self._scanned_commits.get(service, [])
        cutoff = ts_ms - DEPLOY_AFTER_SCAN_MS
        while len(scans) > 1 and scans[1][0] <= cutoff:
            scans.pop(0)
        return scans[0][1] if scans and scans[0][0] <= cutoff else None

    def _deployment(self, service: str, ts_ms: int, github: bool, sha: str) -> dict[str, Any]:
        """A production deployment of `sha` (a commit a security scan passed)."""
        rnd, clock = self.rnd, self.clock
        ok = rnd.random() >= SCENARIOS[service].deploy_failure
        if ok:
            self._patch[service] += 1
            self.versions[service] = f"1.4.{self._patch[service]}"
        deployment_id, actor = self._next_id(), rnd.choice(DEVELOPERS)
        if github:
            return {
                "action": "created",
                "deployment_status": {
                    "id": self._next_id(),
                    "state": "success" if ok else "failure",
                    "creator": {"login": "github-actions[bot]", "type": "Bot"},
                    "description": f"{IMAGES[service]}:{self.version(service)}",
                    "environment": "production",
                    "target_url": f"https://github.com/acme/{service}/deployments",
                    "created_at": clock.seconds(ts_ms),
                    "updated_at": clock.seconds(ts_ms),
                },
                "deployment": {
                    "id": deployment_id,
                    "sha": sha,
                    "ref": "main",
                    "task": "deploy",
                    "payload": {},
                    "environment": "production",
                    "production_environment": True,
                    "creator": {"login": actor, "type": "User"},
                    "created_at": clock.seconds(ts_ms - 95_000),
                    "updated_at": clock.seconds(ts_ms),
                },
                "repository": REPOSITORIES[service],
                "sender": {"login": actor, "type": "User"},
            }
        project = PROJECTS[service]
        return {
            "object_kind": "deployment",
            "status": "success" if ok else "failed",
            "status_changed_at": clock.gitlab(ts_ms).replace(" UTC", " +0000"),
            "deployment_id": deployment_id,
            "deployable_id": deployment_id + 1,
            "deployable_url": f"{project['web_url']}/-/jobs/{deployment_id + 1}",
            "environment": "production",
            "environment_slug": "production",
            "environment_external_url": f"https://{service}.acme.example",
            "project": project,
            "short_sha": sha[:8],
            "user": {"id": 42, "name": actor.title(), "username": actor},
            "commit_url": f"{project['web_url']}/-/commit/{sha}",
            "commit_title": rnd.choice(COMMIT_TITLES),
            "ref": "main",
        }

    def _gitlab_pipeline(self, service: str, ts_ms: int) -> dict[str, Any]:
        rnd, clock = self.rnd, self.clock
        pipeline_id, sha, actor = self._next_id(), self._sha(), rnd.choice(DEVELOPERS)
        duration = rnd.randint(120, 900)
        created = ts_ms - (duration + 20) * 1000
        failing = rnd.choices((None, 1, 2, 3), (88, 4, 4, 4))[0]
        builds = []
        for index, (stage, name) in enumerate(GITLAB_JOBS):
            status = "success"
            if failing is not None:
                status = "failed" if index == failing else "skipped" if index > failing else status
            builds.append(
                {
                    "id": pipeline_id * 10 + index,
                    "stage": stage,
                    "name": name,
                    "status": status,
                    "created_at": clock.gitlab(created),
                    "allow_failure": False,
                    "runner": {"id": 7, "description": "k8s-runner", "tags": ["k8s"]},
                }
            )
        if failing is None:
            self._scan_passed(service, ts_ms, sha)  # its security stage passed
        project = PROJECTS[service]
        return {
            "object_kind": "pipeline",
            "object_attributes": {
                "id": pipeline_id,
                "iid": pipeline_id % 3000,
                "name": "build, test and security scan",  # `workflow:name`
                "ref": self._branch(failing is not None),
                "tag": False,
                "sha": sha,
                "source": "push",
                "status": "failed" if failing is not None else "success",
                "detailed_status": "failed" if failing is not None else "passed",
                "stages": ["build", "test", "security", "deploy"],
                "created_at": clock.gitlab(created),
                "finished_at": clock.gitlab(ts_ms),
                "duration": duration,
                "queued_duration": 20,
                "url": f"{project['web_url']}/-/pipelines/{pipeline_id}",
            },
            "user": {"id": 42, "name": actor.title(), "username": actor},
            "project": project,
            "commit": {"id": sha, "message": rnd.choice(COMMIT_TITLES), "author": {"name": actor}},
            "builds": builds[::-1],  # GitLab lists the latest job first
        }

    # -- Kubernetes audit ----------------------------------------------------------------

    def k8s_audit(self, ts_ms: int) -> bytes:
        """Routine API traffic; now and then a privileged pod or a cluster-admin binding."""
        rnd = self.rnd
        if self.forbidden_left > 0:
            return self.k8s_forbidden(ts_ms)
        if rnd.random() < 0.004:
            self.forbidden_left = rnd.randint(15, 40)
            self._forbidden_user = rnd.choice(
                ("oidc:intern-jo", "system:serviceaccount:ci:deployer", "oidc:contractor-7")
            )
            return self.k8s_forbidden(ts_ms)
        service = rnd.choice(SERVICES)
        r = rnd.random()
        if r < 0.30:
            return self._audit(ts_ms, "list", RS_CONTROLLER, SA_GROUPS, "pods", None)
        if r < 0.52:
            return self._audit(ts_ms, "get", ARGOCD, SA_GROUPS, "deployments", service)
        if r < 0.62:
            body = {"spec": {"template": {"spec": {"containers": [_container(service, self)]}}}}
            return self._audit(ts_ms, "patch", ARGOCD, SA_GROUPS, "deployments", service, body)
        if r < 0.70:
            pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": _pod_name(service, rnd)}}
            pod["spec"] = {"containers": [_container(service, self)], "serviceAccountName": service}
            return self._audit(ts_ms, "create", RS_CONTROLLER, SA_GROUPS, "pods", None, pod)
        if r < 0.78:
            user = f"system:serviceaccount:{NAMESPACE}:{service}"
            return self._audit(ts_ms, "get", user, SA_GROUPS, "secrets", f"{service}-db")
        if r < 0.94:
            user, verb = f"oidc:{rnd.choice(DEVELOPERS)}", rnd.choice(("get", "list"))
            name = PODS[service][0]["name"] if verb == "get" else None
            return self._audit(ts_ms, verb, user, HUMAN_GROUPS, "pods", name, ua=KUBECTL)
        if r < 0.99:
            service = rnd.choice(EXEC_SERVICES)
            user, name = f"oidc:{rnd.choice(DEVELOPERS)}", PODS[service][1]["name"]
            return self._audit(
                ts_ms, "create", user, HUMAN_GROUPS, "pods", name, sub="exec", ua=KUBECTL
            )
        if r < 0.996:
            return self._privileged_pod(ts_ms)
        return self._cluster_admin_binding(ts_ms)

    def k8s_forbidden(self, ts_ms: int) -> bytes:
        """One request of a 403 burst: one user probing secrets and pods it may not read."""
        self.forbidden_left -= 1
        rnd = self.rnd
        resource = rnd.choice(("secrets", "secrets", "pods", "configmaps"))
        namespace = rnd.choice((NAMESPACE, "kube-system", "monitoring", "argocd"))
        verb = rnd.choice(("list", "get", "list"))
        name = None if verb == "list" else rnd.choice(("db-credentials", "tls", "admin-token"))
        user = self._forbidden_user
        groups = SA_GROUPS if user.startswith("system:") else HUMAN_GROUPS
        return self._audit(
            ts_ms, verb, user, groups, resource, name, ns=namespace, code=403, ua=KUBECTL
        )

    def _privileged_pod(self, ts_ms: int) -> bytes:
        name = f"debug-{self.rnd.getrandbits(20):05x}"
        pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "hostPID": True,
                "containers": [
                    {
                        "name": "debug",
                        "image": "docker.io/library/alpine:3.19",
                        "command": ["sleep", "infinity"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                    }
                ],
                "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
            },
        }
        user = f"oidc:{self.rnd.choice(DEVELOPERS)}"
        return self._audit(ts_ms, "create", user, HUMAN_GROUPS, "pods", None, pod, ua=KUBECTL)

    def _cluster_admin_binding(self, ts_ms: int) -> bytes:
        user = f"oidc:{self.rnd.choice(DEVELOPERS)}"
        binding = {
            "kind": "ClusterRoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": f"{user[5:]}-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        }
        return self._audit(
            ts_ms, "create", user, HUMAN_GROUPS, "clusterrolebindings", None, binding, ua=KUBECTL
        )

    def _audit(
        self,
        ts_ms: int,
        verb: str,
        user: str,
        groups: list[str],
        resource: str,
        name: str | None,
        request: dict[str, Any] | None = None,
        *,
        sub: str | None = None,
        ns: str | None = NAMESPACE,
        code: int | None = None,
        ua: str = "kube-controller-manager/v1.29.2 (linux/amd64) kubernetes/4b8e819",
    ) -> bytes:
        """One audit.k8s.io/v1 Event at stage ResponseComplete."""
        group, version = K8S_RESOURCES[resource]
        if resource == "clusterrolebindings":
            ns = None
        code = code or (201 if verb == "create" else 200)
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        uri = prefix + (f"/namespaces/{ns}" if ns else "") + f"/{resource}"
        uri += (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
        ref: dict[str, Any] = {"resource": resource}
        if ns:
            ref["namespace"] = ns
        if name:
            ref["name"] = name
        if sub:
            ref["subresource"] = sub
        ref.update({"apiGroup": group, "apiVersion": version} if group else {"apiVersion": version})
        status: dict[str, Any] = {"metadata": {}, "code": code}
        if code == 403:
            what = f'{resource} "{name}"' if name else resource
            status.update(
                status="Failure",
                reason="Forbidden",
                message=f'{what} is forbidden: User "{user}" cannot {verb} resource '
                f'"{resource}" in API group "{group}" in the namespace "{ns}"',
            )
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "RequestResponse" if request else "Metadata",
            "auditID": self._uuid(),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": {"username": user, "groups": groups},
            "sourceIPs": ["10.0.12.7" if ua == KUBECTL else "10.0.0.15"],
            "userAgent": ua,
            "objectRef": ref,
            "responseStatus": status,
        }
        if request:
            event["requestObject"] = request
        event["requestReceivedTimestamp"] = self.clock.micros(ts_ms - 3)
        event["stageTimestamp"] = self.clock.micros(ts_ms)
        allowed = code < 400
        event["annotations"] = {
            "authorization.k8s.io/decision": "allow" if allowed else "forbid",
            "authorization.k8s.io/reason": f'RBAC: allowed by ClusterRoleBinding "{groups[0]}"'
            if allowed
            else "",
        }
        return orjson.dumps(event)

    # -- CloudTrail ----------------------------------------------------------------------

    def cloudtrail(self, ts_ms: int) -> bytes:
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
        response = {"requestId": self._uuid(), "_return": True}
        return self._trail(
            ts_ms, "AuthorizeSecurityGroupIngress", "ec2", "bob", params, response, read_only=False
        )

    def _assume_role(self, ts_ms: int, service: str) -> bytes:
        session = f"gha-{service}-{self.rnd.randint(1000, 9999)}"
        params = {
            "roleArn": f"{_ROLE_ARN}/{service}-deploy",
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
            "requestID": self._uuid(),
            "eventID": self._uuid(),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
        }
        if extra:
            event.update(extra)
        return orjson.dumps(event)

    # -- Terraform -----------------------------------------------------------------------

    def terraform(self, ts_ms: int) -> bytes:
        """A small `terraform show -json` plan of one service's stack, sometimes with drift."""
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        changes = []
        for address, state in _tf_resources(service):
            action = rnd.choices(("no-op", "update", "replace"), (70, 25, 5))[0]
            if action == "replace" and "engine" not in state:
                action = "update"
            changes.append(_tf_change(address, state, action))
        if rnd.random() < 0.15:
            address = f"aws_iam_role_policy.{service}_s3_read"
            policy = {"name": f"{service}-s3-read", "role": f"{service}-task", "policy": "{}"}
            changes.append(_tf_change(address, policy, "create"))
        plan: dict[str, Any] = {
            "format_version": "1.2",
            "terraform_version": "1.7.5",
            "resource_changes": changes,
        }
        if rnd.random() < 0.35:  # someone opened SSH to the world in the console
            address, state = _tf_resources(service)[0]
            after = dict(state, ingress=[*state["ingress"], _ingress(22, "0.0.0.0/0")])
            plan["resource_drift"] = [_tf_entry(address, ["update"], state, after)]
            plan["relevant_attributes"] = [{"resource": address, "attribute": ["ingress"]}]
        plan.update(timestamp=self.clock.seconds(ts_ms), applyable=True, complete=True)
        plan["errored"] = False
        return orjson.dumps(plan)

    # -- Alertmanager --------------------------------------------------------------------

    def alertmanager(self, ts_ms: int) -> bytes:
        """A webhook: 1-3 new firing alerts, or the resolution of an earlier firing group."""
        rnd = self.rnd
        if self._firing and (len(self._firing) >= 8 or rnd.random() < 0.45):
            payload = self._firing.pop(0)
            payload["status"] = "resolved"
            for alert in payload["alerts"]:
                alert["status"] = "resolved"
                alert["endsAt"] = self.clock.millis(ts_ms)
            return orjson.dumps(payload)
        if self._alert_hint is not None:
            service = self._alert_hint
            alert_index = SCENARIOS[service].alerts[0]
            self._alert_hint = None
        else:
            service = rnd.choice(ALERTING)
            alert_index = rnd.choice(SCENARIOS[service].alerts)
        name, severity, summary, description, expr = ALERTS[alert_index]
        alerts = []
        for pod in rnd.sample(PODS[service], rnd.randint(1, 3)):
            labels = {
                "alertname": name,
                "namespace": NAMESPACE,
                "pod": pod["name"],
                "service": service,
                "severity": severity,
            }
            alerts.append(
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {
                        "summary": summary.format(service=service),
                        "description": description.format(service=service, pod=pod["name"]),
                        "runbook_url": f"https://runbooks.acme.example/{name.lower()}",
                    },
                    "startsAt": self.clock.millis(ts_ms),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr="
                    + expr.format(service=service).replace(" ", "+"),
                    "fingerprint": _fingerprint(name, pod["name"], labels),
                }
            )
        payload = {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}", service="{service}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "vigil",
            "groupLabels": {"alertname": name, "service": service},
            "commonLabels": {"alertname": name, "namespace": NAMESPACE, "service": service,
                             "severity": severity},
            "commonAnnotations": {"summary": summary.format(service=service)},
            "externalURL": "http://alertmanager.monitoring:9093",
            "alerts": alerts,
        }  # fmt: skip
        self._firing.append(payload)
        return orjson.dumps(payload)

    # -- logs and Prometheus text --------------------------------------------------------

    def log(self, ts_ms: int) -> bytes:
        """A Fluent Bit record (Kubernetes filter applied): mostly access logs, some app logs."""
        rnd = self.rnd
        if self._error_left > 0 and rnd.random() < 0.6:
            self._error_left -= 1
            service, status = self._error_service, rnd.choice(_ERRORS)
        else:
            if self._error_left == 0 and rnd.random() < 0.0001:
                self._error_left = rnd.randint(40, 150)
                self._error_service = rnd.choice(INCIDENT_SERVICES)
            service = SERVICES[rnd.getrandbits(2)]
            status = _STATUSES[int(rnd.random() * 1000)]
        # getrandbits and indexing rather than choice/randint: logs are a third of the stream
        pod = PODS[service][rnd.getrandbits(8) % 3]
        clock = self.clock
        bits = rnd.getrandbits(32)
        if status < 500 and bits & 7 == 0:
            level, message = APP_MESSAGES[bits >> 3 & 3]
            line = f'time="{clock.millis(ts_ms)}" level={level} msg="{message}"\n'
        else:
            method, path = ROUTES[service][(bits >> 5 & 255) % 3]
            path = path.format(id=bits >> 13 & 0xFFFF)
            if status >= 500 and bits & 3 == 0:
                line = f'time="{clock.millis(ts_ms)}" level=error msg="upstream request failed" '
                line += f'status={status} path="{path}"\n'
            else:
                client = _CLIENTS[bits >> 3 & 63]
                size = 120 + (bits >> 9 & 4095) if status < 204 else 0 if status < 400 else 64
                agent = _AGENTS[bits >> 29 & 3]
                line = f'{client} - - [{clock.apache(ts_ms)}] "{method} {path} HTTP/1.1" '
                line += f'{status} {size} "-" "{agent}"\n'
        record = {
            "@timestamp": clock.micros(ts_ms),
            "log": line,
            "stream": "stderr" if status >= 500 else "stdout",
            "time": clock.nanos(ts_ms),
            "kubernetes": {
                "pod_name": pod["name"],
                "namespace_name": NAMESPACE,
                "pod_id": pod["id"],
                "labels": {"app": service, "pod-template-hash": pod["hash"]},
                "host": pod["host"],
                "container_name": service,
                "docker_id": pod["docker_id"],
                "container_image": f"{IMAGES[service]}:{self.versions[service]}",
            },
        }
        return orjson.dumps(record)

    def exposition(self, ts_ms: int) -> bytes:
        """A few Prometheus text exposition lines of one pod, with timestamps."""
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        pod = rnd.choice(PODS[service])
        total = self._requests.get(pod["name"], 0) + rnd.randint(20, 400)
        self._requests[pod["name"]] = total
        labels = f'job="{service}",instance="{pod["ip"]}:8080",pod="{pod["name"]}"'
        memory = rnd.gauss(1.6e8, 1.2e7)
        text = (
            "# HELP http_requests_total Total HTTP requests served.\n"
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{{labels},code="200"}} {total} {ts_ms}\n'
            "# TYPE process_resident_memory_bytes gauge\n"
            f"process_resident_memory_bytes{{{labels}}} {memory:.6e} {ts_ms}\n"
            f"up{{{labels}}} 1 {ts_ms}\n"
        )
        return text.encode()


_FINGERPRINTS: dict[tuple[str, str], str] = {}


def _fingerprint(alertname: str, pod: str, labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of an alert's labels (alertname and pod determine them)."""
    key = (alertname, pod)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = alertmanager_fingerprint(labels)
    return _FINGERPRINTS[key]


def _semgrep_rule(rule_id: str, message: str, level: str, cwe: str, *_: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": rule_id,
        "shortDescription": {"text": message},
        "fullDescription": {"text": message},
        "defaultConfiguration": {"level": level},
        "helpUri": f"https://semgrep.dev/r/{rule_id}",
        "properties": {"precision": "very-high", "tags": [cwe, "security"]},
    }


def _container(service: str, sources: Sources) -> dict[str, Any]:
    return {
        "name": service,
        "image": f"{IMAGES[service]}:{sources.version(service)}",
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
    }


def _pod_name(service: str, rnd: random.Random) -> str:
    return f"{PODS[service][0]['name'][:-5]}{rnd.getrandbits(20):05x}"


def _ingress(port: int, cidr: str) -> dict[str, Any]:
    return {
        "cidr_blocks": [cidr],
        "description": "",
        "from_port": port,
        "ipv6_cidr_blocks": [],
        "protocol": "tcp",
        "security_groups": [],
        "self": False,
        "to_port": port,
    }


def _tf_resources(service: str) -> list[tuple[str, dict[str, Any]]]:
    """(address, current state) of the resources of one service's stack."""
    return [
        (
            f"aws_security_group.{service}",
            {
                "name": f"{service}-sg",
                "id": SECURITY_GROUPS[service],
                "ingress": [_ingress(443, "10.0.0.0/16")],
                "tags": {"service": service, "env": NAMESPACE},
            },
        ),
        (
            f"aws_iam_role.{service}_task",
            {
                "name": f"{service}-task",
                "arn": f"{_ROLE_ARN}/{service}-task",
                "max_session_duration": 3600,
                "tags": {"service": service},
            },
        ),
        (
            f"aws_db_instance.{service}",
            {
                "identifier": f"{service}-prod",
                "engine": "postgres",
                "engine_version": "15.5",
                "instance_class": "db.r6g.large",
                "password": f"gen-{_hex(service, 'db', size=6)}",
            },
        ),
    ]


def _tf_change(address: str, state: dict[str, Any], action: str) -> dict[str, Any]:
    if action == "create":
        return _tf_entry(address, ["create"], None, state, unknown={"id": True, "arn": True})
    if action == "update":
        key = "instance_class" if "instance_class" in state else "tags"
        value = "db.r6g.xlarge" if key == "instance_class" else {**state["tags"], "owner": "sre"}
        return _tf_entry(address, ["update"], state, {**state, key: value})
    if action == "replace":
        after = {**state, "engine_version": "16.2"}
        entry = _tf_entry(address, ["delete", "create"], state, after, unknown={"id": True})
        entry["action_reason"] = "replace_because_cannot_update"
        return entry
    return _tf_entry(address, ["no-op"], state, state)


def _tf_entry(
    address: str,
    actions: list[str],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    unknown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    kind, name = address.split(".", 1)
    sensitive = {"password": True} if "aws_db_instance" in address else {}
    return {
        "address": address,
        "mode": "managed",
        "type": kind,
        "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": unknown or {},
            "before_sensitive": sensitive if before is not None else False,
            "after_sensitive": sensitive if after is not None else False,
        },
    }
