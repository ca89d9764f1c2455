//go:build !windows

package main

// permsMatter: Unix modes say who may read the data directory and token.
const permsMatter = true
