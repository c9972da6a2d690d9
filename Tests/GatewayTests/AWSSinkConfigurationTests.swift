import Foundation
import Sinks
import Testing
@testable import Gateway

/// `s3`, `kinesis` and `firehose` entries of `sinks:`: their keys, defaults, credentials and problems.
@Suite struct AWSSinkConfigurationTests {
    let head = minimalConfigurationYAML + "sinks:\n"
    let environment = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token"]

    @Test func everyKeyIsRead() throws {
        let directory = makeTemporaryDirectory("aws-config")
        try "[logs]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n".write(toFile: directory + "/aws-credentials", atomically: true, encoding: .utf8)
        let yaml = head + """
              - { name: lake, type: s3, bucket: osquery-logs, prefix: fleet/, region: eu-west-1, endpoint: "http://127.0.0.1:5000",
                  roll_every: 10m, roll_size: 32MiB, part_size: 8MiB, level: 5, gateway_id: gw-1, timeout: 20s }
              - { name: stream, type: kinesis, stream: osquery, region: us-east-1, credentials_file: aws-credentials, profile: logs,
                  batch: { max_records: 200, max_wait: 2s } }
              - { name: hose, type: firehose, delivery_stream: osquery-hose }
            """
        let configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: directory, environment: environment.merging(["AWS_REGION": "ap-south-1"]) { $1 })
        guard case .s3(let s3) = configuration.sinks[0].kind else { Issue.record("not s3"); return }
        #expect(s3.bucket == "osquery-logs")
        #expect(s3.prefix == "fleet/")
        #expect(s3.connection.region == "eu-west-1")
        #expect(s3.connection.endpoint == "http://127.0.0.1:5000")
        #expect(s3.connection.credentials == .fixed(AWSCredentials(accessKeyID: "AKIDENV", secretAccessKey: "env-secret", sessionToken: "env-token")))
        #expect(s3.connection.requestTimeout == .seconds(20))
        #expect(s3.rollEvery == .seconds(600))
        #expect(s3.rollSize == 32 << 20)
        #expect(s3.partSize == 8 << 20)
        #expect(s3.level == 5)
        #expect(s3.gatewayID == "gw-1")
        guard case .kinesis(let kinesis) = configuration.sinks[1].kind else { Issue.record("not kinesis"); return }
        #expect(kinesis.stream == "osquery")
        #expect(kinesis.connection.credentials == .file(path: directory + "/aws-credentials", profile: "logs"))
        #expect(kinesis.batching.maxRecords == 200)
        #expect(kinesis.batching.maxWait == .seconds(2))
        #expect(kinesis.batching.maxBytes == 4 << 20)
        guard case .firehose(let firehose) = configuration.sinks[2].kind else { Issue.record("not firehose"); return }
        #expect(firehose.deliveryStream == "osquery-hose")
        #expect(firehose.connection.region == "ap-south-1", "AWS_REGION when no region is given")
        #expect(firehose.connection.endpoint == nil)
        // The secret never shows where a configuration is printed (reload compares printed kinds).
        #expect(!"\(configuration.sinks[0].kind)".contains("env-secret"))
    }

    @Test func problemsNameTheKeyAndLine() throws {
        let yaml = head + """
              - { name: lake, type: s3, region: us-east-1, endpoint: s3.internal, part_size: 1MiB, gateway_id: "gw 1" }
              - { name: stream, type: kinesis, stream: osquery, credentials_file: missing-file }
              - { name: hose, type: firehose, delivery_stream: d, region: us-east-1, profile: logs, batch: { max_records: 501 } }
            """
        let text = try configurationProblems(yaml)
        #expect(text.contains { $0.hasPrefix("line 8: sinks[0].bucket: is required") }, "\(text)")
        #expect(text.contains("line 8: sinks[0].endpoint: must start with http:// or https://"), "\(text)")
        #expect(text.contains("line 8: sinks[0].part_size: must be at least 5242880 bytes, found \"1MiB\""), "\(text)")
        #expect(text.contains("line 8: sinks[0].gateway_id: may only hold letters, digits, '.', '_' and '-'"), "\(text)")
        #expect(text.contains("line 8: sinks[0]: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give credentials_file"), "\(text)")
        #expect(text.contains { $0.hasPrefix("line 9: sinks[1].region: is required") }, "\(text)")
        #expect(text.contains("line 9: sinks[1].credentials_file: cannot read the AWS credentials file /tmp/missing-file"), "\(text)")
        #expect(text.contains("line 10: sinks[2].profile: needs credentials_file"), "\(text)")
        #expect(text.contains("line 10: sinks[2].batch.max_records: expected a whole number from 1 to 500, found \"501\""), "\(text)")
    }
}
