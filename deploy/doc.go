// Package deploy holds deployment files; its tests check the nginx and HAProxy configurations.
package deploy
