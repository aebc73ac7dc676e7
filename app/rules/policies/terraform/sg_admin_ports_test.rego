package vigil.terraform.sg_admin_ports

plan(rc) := {"resource_changes": [object.union({"address": "aws_security_group.web"}, rc)]}

group(ingress) := plan({"type": "aws_security_group", "change": {"actions": ["create"], "after": {"ingress": ingress}}})

test_ssh_from_anywhere_denied if {
	violations(group([{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]}])) == {
		"aws_security_group.web: port 22 open to 0.0.0.0/0",
	}
}

test_rdp_in_port_range_from_ipv6_anywhere_denied if {
	count(violations(group([{"protocol": "tcp", "from_port": 3000, "to_port": 4000, "ipv6_cidr_blocks": ["::/0"]}]))) == 1
}

test_all_traffic_rule_denied if {
	count(violations(group([{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}]))) == 2
}

test_ssh_from_office_allowed if {
	count(violations(group([{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["203.0.113.0/24"]}]))) == 0
}

test_https_from_anywhere_allowed if {
	count(violations(group([{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}]))) == 0
}

test_security_group_rule_denied if {
	count(violations(plan({"type": "aws_security_group_rule", "change": {"actions": ["create"], "after": {
		"type": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"],
	}}}))) == 1
}

test_vpc_ingress_rule_denied if {
	count(violations(plan({"type": "aws_vpc_security_group_ingress_rule", "change": {"actions": ["create"], "after": {
		"ip_protocol": "tcp", "from_port": 3389, "to_port": 3389, "cidr_ipv4": "0.0.0.0/0",
	}}}))) == 1
}

test_egress_rule_allowed if {
	count(violations(plan({"type": "aws_security_group_rule", "change": {"actions": ["create"], "after": {
		"type": "egress", "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"],
	}}}))) == 0
}
