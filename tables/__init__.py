"""State: Faust table definitions and the Faust-free logic that updates them."""
