# METADATA
# title: S3 bucket ACL grants public access
# description: >-
#   A planned S3 bucket (or bucket ACL) whose canned ACL opens it to everyone or to every AWS
#   account; the plan-time counterpart of aws-s3-bucket-public-acl.
# custom:
#   id: tf-s3-bucket-public-acl
#   input: terraform
#   resource_types: [aws_s3_bucket, aws_s3_bucket_acl]
#   severity: high
#   controls:
#     nist-800-53-r5: [AC-3, SC-7]
#     pci-dss-4.0: ["1.4.4", "7.2.1"]
#     cis-aws-1.4.0: ["2.1.5"]
#   approximate: [pci-dss-4.0]
package vigil.terraform.s3_public_acl

public_acls := {"public-read", "public-read-write", "authenticated-read"}

deny contains msg if {
	some msg in violations(input)
}

violations(plan) := {msg |
	some rc in plan.resource_changes
	rc.type in {"aws_s3_bucket", "aws_s3_bucket_acl"}
	rc.change.after.acl in public_acls
	msg := sprintf("%s: canned ACL %s makes the bucket public", [rc.address, rc.change.after.acl])
}
