// Package e2e holds the end-to-end tests: they build the real cortex and
// cortexd binaries, start daemons in temporary CORTEX_ROOTs and drive them
// as a user would. They need root and the kernel features the sandbox
// uses; without them they skip with the reason (or fail under
// CORTEX_TEST_PRIVILEGED=1).
package e2e
