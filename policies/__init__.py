"""Pulumi CrossGuard policy pack of HIPAA imaging guardrails."""
