//go:build tools

// Package tools pins the main packages the test bed builds from this Istio
// commit, so that `go mod tidy` keeps every module they need.
package tools

import (
	_ "istio.io/istio/istioctl/cmd/istioctl"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
