package hooks

// Internals the external tests reach.
var QuietEnd = quietEnd
