package vigil.terraform.s3_public_acl

plan(type, after) := {"resource_changes": [{
	"address": "aws_s3_bucket_acl.logs",
	"type": type,
	"change": {"actions": ["create"], "after": after},
}]}

test_public_read_bucket_acl_denied if {
	violations(plan("aws_s3_bucket_acl", {"acl": "public-read"})) == {
		"aws_s3_bucket_acl.logs: canned ACL public-read makes the bucket public",
	}
}

test_legacy_bucket_acl_argument_denied if {
	count(violations(plan("aws_s3_bucket", {"acl": "authenticated-read"}))) == 1
}

test_private_bucket_allowed if {
	count(violations(plan("aws_s3_bucket_acl", {"acl": "private"}))) == 0
}

test_deleted_bucket_allowed if {
	count(violations(plan("aws_s3_bucket_acl", null))) == 0
}
