package main

// Printable is printable, for the table-driven test of its cases that no
// receiver can reach through the server (which stores bodies as valid UTF-8).
var Printable = printable

// PrintJSON is what --json prints with.
var PrintJSON = printJSON
