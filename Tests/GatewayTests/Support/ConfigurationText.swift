import Testing
@testable import Gateway

/// The smallest configuration file that parses: the TLS files and one enrollment secret, six lines
/// and a newline, so what a test appends starts on line 7 and the lines its problems name stay put.
let minimalConfigurationYAML = """
    tls:
      certificate: tls/server.pem
      private_key: tls/server.key
    enrollment:
      secrets:
        - { name: default, file: secret.txt }

    """

/// Parses `yaml`, which must be refused, and returns every problem's sentence (`line N: key: ...`).
func configurationProblems(_ yaml: String, baseDirectory: String = "/tmp",
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
    let error = try #require(throws: ConfigurationError.self, sourceLocation: sourceLocation) {
        try GatewayConfiguration.parse(yaml: yaml, baseDirectory: baseDirectory, environment: [:])
    }
    return error.problems.map(\.description)
}
