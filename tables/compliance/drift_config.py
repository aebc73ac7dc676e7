"""Drift settings: who counts as the IaC pipeline, where baselines live, what to mask."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.masking import MaskingPolicy

DEFAULT_IAC_USER_AGENTS: tuple[str, ...] = (
    "*terraform*",
    "*pulumi*",
    "cloudformation.amazonaws.com",
    "*aws-cdk*",
)
DEFAULT_K8S_IAC_IDENTITIES: tuple[str, ...] = (
    "system:serviceaccount:argocd:argocd-application-controller",
    "system:serviceaccount:argocd:argocd-server",
    "system:serviceaccount:flux-system:kustomize-controller",
    "system:serviceaccount:flux-system:helm-controller",
)
#: Control-plane identities whose writes are the cluster running, not configuration changes.
DEFAULT_K8S_IGNORED_IDENTITIES: tuple[str, ...] = (
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:apiserver",
    "system:serviceaccount:kube-system:*",
    "system:node:*",
)


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Who counts as the IaC pipeline, where baselines live, what to mask."""

    #: fnmatch patterns (case-insensitive) of CloudTrail user agents of IaC tools.
    iac_user_agents: tuple[str, ...] = DEFAULT_IAC_USER_AGENTS
    #: fnmatch patterns of CloudTrail identities of the pipeline (principal ARN, session
    #: issuer ARN or principal name), e.g. `arn:aws:iam::*:role/terraform-ci`. When set, a
    #: change is in band only if identity *and* (when set) user agent match.
    iac_identities: tuple[str, ...] = ()
    #: fnmatch patterns of Kubernetes usernames of GitOps controllers.
    k8s_iac_identities: tuple[str, ...] = DEFAULT_K8S_IAC_IDENTITIES
    #: Kubernetes usernames whose writes are ignored (controllers, nodes).
    k8s_ignored_identities: tuple[str, ...] = DEFAULT_K8S_IGNORED_IDENTITIES
    #: Baseline YAML (see `load_baselines`); None = no baselines.
    baselines_path: str | None = None
    #: Masking applied to desired and observed values in outputs.
    masking: MaskingPolicy = field(default_factory=MaskingPolicy)
    #: Most attribute paths remembered per entity (oldest undrifted observations go first).
    max_paths: int = 512
