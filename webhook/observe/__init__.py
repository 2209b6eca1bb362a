"""Operating deployguard: metrics, Events, traces, the decision log and audit queries."""
