// Package ui holds the staff dashboard: plain HTML, CSS and JavaScript modules with the
// vendored browser libraries, embedded in the binary so that building clinicmsg needs no
// Node and no build step. hooks serves it at /app/.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed index.html app.css js vendor
var files embed.FS

// FS is the dashboard's files, rooted at the app (index.html at the top).
var FS fs.FS = files
