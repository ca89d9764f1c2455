//go:build !linux

package main

// usesLogind: only Linux has logind.
const usesLogind = false
