# A conftest policy as its authors write it (no METADATA, package main): it reads a plan.
package main

deny contains msg if {
	some rc in input.resource_changes
	"delete" in rc.change.actions
	msg := sprintf("%s: deleting resources is not allowed", [rc.address])
}

deny contains msg if {
	some rc in input.resource_changes
	rc.type == "local_file"
	rc.change.after.file_permission == "0777"
	msg := sprintf("%s: world-writable file permission %s", [rc.address, rc.change.after.file_permission])
}
