//go:build linux

package main

// usesLogind: on Linux, sleep and wake come from logind.
const usesLogind = true
