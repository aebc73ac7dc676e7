"""Policy as code in Rego (OPA 1.x syntax), evaluated in-process by regopy (rego-cpp).

- `engine`: the interpreter wrapper (errors named by file and line, engine quirks handled);
- `metadata`: OPA `# METADATA` annotations (title, description, `custom:` fields);
- `inputs`: the three input shapes (Terraform plan, Gatekeeper review, canonical event);
- `gatekeeper`: ConstraintTemplates and Constraints;
- `loader`: a checked, tested policy set from directories (`load_policies`).

tables/compliance/policy_rules.py turns a policy set into compliance rules (docs/drift.md,
"Policies in Rego").
"""
