// Package layering holds no code: its test checks that resdet's packages
// import only packages below them in the order the README's architecture
// section gives.
package layering
