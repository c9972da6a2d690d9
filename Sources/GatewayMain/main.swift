import Gateway

await GatewayEntryPoint.main()
