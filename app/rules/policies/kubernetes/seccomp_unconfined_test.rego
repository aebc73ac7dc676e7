package vigilseccompunconfined

pod(spec) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec}

test_unconfined_pod_denied if {
	violations(pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [{"name": "app"}]})) == {
		"Pod web: the pod runs with seccomp Unconfined",
	}
}

test_unconfined_container_in_deployment_denied if {
	deployment := {"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"template": {"spec": {"containers": [
		{"name": "app", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
	]}}}}
	violations(deployment) == {"Deployment api: container app runs with seccomp Unconfined"}
}

test_runtime_default_allowed if {
	count(violations(pod({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "app"}]}))) == 0
}

test_no_profile_allowed if {
	count(violations(pod({"containers": [{"name": "app"}]}))) == 0
}
