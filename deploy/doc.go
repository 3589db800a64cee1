// Package deploy holds the deployment files (load balancer configurations,
// container and Kubernetes manifests) and renders the committed nginx
// configuration for other addresses, so that tests run exactly the file
// users deploy. Its tests check the nginx and HAProxy configurations.
package deploy
