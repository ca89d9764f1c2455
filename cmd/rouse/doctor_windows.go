//go:build windows

package main

// permsMatter: Windows ACLs are not Unix modes; the mode checks do not apply.
const permsMatter = false
