# METADATA
# title: Security group opens SSH or RDP to the world
# description: >-
#   A planned security group (or rule) allowing ingress to port 22 or 3389 from 0.0.0.0/0 or
#   ::/0; the plan-time counterpart of aws-sg-ssh-open-to-world and aws-sg-rdp-open-to-world.
# custom:
#   id: tf-sg-admin-port-open-to-world
#   input: terraform
#   resource_types: [aws_security_group, aws_security_group_rule, aws_vpc_security_group_ingress_rule]
#   severity: high
#   controls:
#     nist-800-53-r5: [SC-7, CM-7]
#     pci-dss-4.0: ["1.3.1", "1.4.2"]
#     cis-aws-1.4.0: ["5.2"]
package vigil.terraform.sg_admin_ports

admin_ports := {22, 3389}

world := {"0.0.0.0/0", "::/0"}

deny contains msg if {
	some msg in violations(input)
}

violations(plan) := {msg |
	some rc in plan.resource_changes
	some rule in ingress_rules(rc)
	some port in admin_ports
	covers(rule, port)
	some cidr in sources(rule)
	cidr in world
	msg := sprintf("%s: port %d open to %s", [rc.address, port, cidr])
}

# An "all traffic" rule (protocol -1) covers every port, whatever its port numbers say.
covers(rule, _) if rule.protocol in {"-1", "all"}

covers(rule, port) if {
	rule.from_port <= port
	port <= rule.to_port
}

ingress_rules(rc) := rc.change.after.ingress if rc.type == "aws_security_group"

ingress_rules(rc) := [rc.change.after] if {
	rc.type == "aws_security_group_rule"
	rc.change.after.type == "ingress"
}

ingress_rules(rc) := [rule] if {
	rc.type == "aws_vpc_security_group_ingress_rule"
	after := rc.change.after
	rule := {
		"protocol": object.get(after, "ip_protocol", "tcp"),
		"from_port": object.get(after, "from_port", 0),
		"to_port": object.get(after, "to_port", 65535),
		"cidr_ipv4": object.get(after, "cidr_ipv4", null),
		"cidr_ipv6": object.get(after, "cidr_ipv6", null),
	}
}

sources(rule) := {cidr |
	some key in ["cidr_blocks", "ipv6_cidr_blocks"]
	some cidr in object.get(rule, key, [])
} | {cidr |
	some key in ["cidr_ipv4", "cidr_ipv6"]
	cidr := object.get(rule, key, null)
	is_string(cidr)
}
