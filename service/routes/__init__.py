"""One router per resource: infer, render, shapes, health."""
