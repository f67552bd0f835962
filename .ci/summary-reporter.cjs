// Prints the one plain summary line CI looks for, after Jest's own summary.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const passed = results.numPassedTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(`tests: ${passed} passed, ${failed} failed\n`);
  }
}
module.exports = SummaryReporter;
