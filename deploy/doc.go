// Package deploy holds the deployment files (load balancer configurations,
// container and Kubernetes manifests) and renders the committed nginx
// configuration for other addresses, so that tests run exactly the file
// users deploy. Its tests check the nginx and HAProxy configurations, the
// Kubernetes manifests (rendered with kustomize and decoded strictly), the
// compose file, the Prometheus rules and the Grafana dashboard (with
// promtool), the release script and the Dockerfile, and the README's
// folder table.
package deploy
