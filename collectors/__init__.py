"""Edge collectors: read devices and emit typed Readings and Events. They never write to storage."""
