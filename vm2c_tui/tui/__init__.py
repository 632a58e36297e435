"""The wizard: a Textual face over the services (one Screen per step)."""
