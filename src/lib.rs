//! Workspace-level tests and examples of `resilience`; not published.
