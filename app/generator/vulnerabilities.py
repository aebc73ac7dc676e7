"""The catalogue the generated scans draw from: known CVEs of the images' OS packages and of
each stack's language packages (with CVSS, EPSS and CISA KEV data), where Trivy reports a
stack's packages, and the Semgrep rules each stack's code breaks."""

from __future__ import annotations

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
