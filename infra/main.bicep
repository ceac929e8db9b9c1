// teamscc on Azure: an Azure Functions custom handler on the Flex Consumption plan, with
// Table storage, Service Bus, Key Vault and Application Insights, all reached through one
// user-assigned managed identity (no keys, no connection strings), and, when a
// graphClientId is given, the Azure Bot that makes the app a Teams calling bot.
// Deployed by `azd up`.
//
// Drift guards (shared/deploytest): every app setting the handler reads (shared/config
// Settings) and every %Setting% in functions/*/function.json is set below with the code's
// default; every serviceBusTrigger queue is declared with the trigger's session mode; the
// app's tables are declared; the app identity holds exactly six data-plane roles; the
// bot's calling webhook is the CallingWebhookUrl app setting; a secret setting is a
// versionless Key Vault reference that a provision without the secret's value keeps, and
// no provision writes an empty secret.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person or pipeline running azd. When set, it gets Table Data Contributor and Key Vault Secrets Officer for troubleshooting; leave empty in production.')
param principalId string = ''

// ---------------------------------------------------------------------------------------
// Handler settings. Defaults equal those of shared/config (deploytest checks it).
// App settings are strings, so the numeric ones are strings too; the handler validates
// every value at start and names the setting it refuses.
// ---------------------------------------------------------------------------------------

@description('Client id of this app\'s multi-tenant Entra app registration (GraphClientId). When set, the Azure Bot is created with it as its Microsoft App ID.')
param graphClientId string = ''

@description('Home tenant of that registration, for the Azure Bot (msaAppTenantId); empty: the tenant of this deployment.')
param graphTenantId string = ''

@secure()
@description('Client secret of that registration, for tenants in application mode and calls. When set it is stored in Key Vault (as a new version of the secret GraphClientSecret) and the app setting GraphClientSecret references it. When empty the vault is left alone and the setting keeps its Key Vault reference if an earlier provision stored the secret: the value is needed only by the provision that stores or replaces it.')
param graphClientSecret string = ''

@description('NCRONTAB schedule (UTC, with seconds) of the PresenceRefresh timer (PresenceRefreshSchedule).')
param presenceRefreshSchedule string = '*/15 * * * * *'

@description('Service Bus queue of "refresh this tenant now" requests (PresenceQueue).')
param presenceQueueName string = 'presence-refresh'

@description('Service Bus queue of routing kicks, one session per service (CallsQueue).')
param callsQueueName string = 'calls'

@description('Service Bus queue of outbound scheduling requests, e.g. from Power Automate (OutboundRequestsQueue).')
param outboundRequestsQueueName string = 'outbound-requests'

@description('Service Bus queue the accepted outbound tasks are scheduled on for their due time (OutboundDueQueue).')
param outboundDueQueueName string = 'outbound-due'

@description('How far ahead an outbound task may be due, in days 1..365 (OutboundHorizonDays).')
param outboundHorizonDays string = '30'

@description('NCRONTAB schedule (UTC, with seconds) of the OutboundReconcile timer (OutboundReconcileSchedule).')
param outboundReconcileSchedule string = '0 */5 * * * *'

@description('NCRONTAB schedule (UTC, with seconds) of the ProvisioningRun timer, which removes services pending deletion (ProvisioningSchedule).')
param provisioningSchedule string = '0 30 * * * *'

@description('NCRONTAB schedule (UTC, with seconds) of the DirectorySync timer, which brings every Teams-based service\'s agents in step with its Team (DirectorySyncSchedule).')
param directorySyncSchedule string = '0 */15 * * * *'

@description('NCRONTAB schedule (UTC, with seconds) of the CallsReconcile timer, which finishes overdue call steps, hangs up offer legs left ringing and keeps long calls alive (CallsReconcileSchedule).')
param callsReconcileSchedule string = '*/30 * * * * *'

@description('OpenID metadata of Microsoft\'s calling platform: the keys its notification tokens are signed with (CallingOpenIdMetadataUrl).')
param callingOpenIdMetadataUrl string = 'https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration'

@description('Seconds an old Interact widget key keeps working after a refresh, 0..3600 (InteractKeyGraceSeconds).')
param interactKeyGraceSeconds string = '0'

@description('Comma-separated token audiences the Interact widget\'s tokens may carry when a tenant names none (InteractTokenAudiences).')
param interactTokenAudiences string = ''

@description('Where Entra publishes its signing keys (EntraJwksUrl); empty derives it from EntraAuthorityHost.')
param entraJwksUrl string = ''

@description('Graph presence requests in flight per tenant, 1..64 (PresenceMaxInFlight).')
param presenceMaxInFlight string = '8'

@description('Tenants refreshed at once, 1..64 (PresenceMaxTenantsInFlight).')
param presenceMaxTenantsInFlight string = '4'

@description('Seconds an agent must read Offline before Offline is stored, 0..600 (PresenceOfflineDampingSeconds).')
param presenceOfflineDampingSeconds string = '30'

@description('Consecutive all-Offline polls before the privacy-mode warning, 1..10000 (PresencePrivacyModePolls).')
param presencePrivacyModePolls string = '20'

@description('Seconds a refused presence credential is left alone, 10..86400 (PresenceAccountRetrySeconds).')
param presenceAccountRetrySeconds string = '300'

@description('Seconds presence stays good after a credential last read it, 30..86400; older, routing treats it as unknown unless a service routes on stale presence (PresenceMaxAgeSeconds).')
param presenceMaxAgeSeconds string = '180'

@description('Microsoft Graph base URL (GraphBaseUrl); change only for national clouds.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Entra authority host (EntraAuthorityHost); change only for national clouds.')
param entraAuthorityHost string = 'https://login.microsoftonline.com/'

@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
@description('Handler log level (LogLevel).')
param logLevel string = 'info'

@description('Comma-separated audiences of admin API tokens: this app\'s client id and/or App ID URI (AdminAudiences). Empty refuses every admin call.')
param adminAudiences string = ''

@description('App role value that makes a caller a platform operator (OperatorAppRole).')
param operatorAppRole string = 'Platform.Operator'

@description('Letters/digits prepended to every table name (TableNamePrefix). Leave empty: each deployment has its own storage account.')
param tableNamePrefix string = ''

// ---------------------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------------------

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance in MB. Billing is memory x execution time, so 512 costs a quarter of 2048 per second (README.md (Deploy to Azure), cost).')
param instanceMemoryMB int = 2048

@maxValue(1000)
@description('Upper bound of Flex Consumption scale-out (the platform accepted 40..1000 when this was written).')
param maximumInstanceCount int = 40

@description('Route all outbound traffic through a VNet and a NAT gateway with one static public IP (about USD 35/month more), so tenant admins can trust a fixed address in conditional access. Needs the Microsoft.App resource provider registered.')
param enableNatGateway bool = false

@description('Key Vault purge protection. Once on it cannot be turned off, and `azd down --purge` can no longer purge the vault (its name stays taken for the retention period).')
param keyVaultEnablePurgeProtection bool = false

@allowed([
  'F0'
  'S1'
])
@description('Pricing tier of the Azure Bot (created only with a graphClientId). Teams, calling included, is a standard channel; the tiers differ in premium-channel (Direct Line, Web Chat) messages, which this bot does not use.')
param botSku string = 'F0'

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
// The calling webhook: the callback of every call and the bot's "Webhook (for calling)".
// Built from the host the platform gave the site, so the app setting and the bot agree.
var callingWebhookUrl = 'https://${api.outputs.defaultHostName}/api/teams/notifications'
// Flex Consumption pulls the deployment package from this blob container.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// One entry per Service Bus queue the app uses. `setting` is the app setting that names the
// queue in functions/*/function.json (`"queueName": "%Setting%"`) and `requiresSession`
// must equal that trigger's isSessionsEnabled (deploytest checks both). Neither sessions
// nor duplicate detection can be changed on an existing queue: changing them means a new
// queue name, or deleting the queue before `azd provision`.
var serviceBusQueues = [
  {
    setting: 'PresenceQueue'
    name: presenceQueueName
    requiresSession: false
  }
  {
    // RouteCall: session = tenant:service, so one matcher per service at a time.
    setting: 'CallsQueue'
    name: callsQueueName
    requiresSession: true
  }
  {
    // ScheduleOutbound: requests as Power Automate sends them.
    setting: 'OutboundRequestsQueue'
    name: outboundRequestsQueueName
    requiresSession: false
  }
  {
    // OutboundDue: scheduled messages, one per accepted outbound task.
    setting: 'OutboundDueQueue'
    name: outboundDueQueueName
    requiresSession: false
    // Scheduled up to OutboundHorizonDays (at most 365) ahead: the messages must outlive
    // that, whether the broker counts their lifetime from sending or from the due time.
    timeToLive: 'P400D'
  }
]

// The app's tables (shared/tables allTables; deploytest checks the list). The handler
// creates missing ones at start too; declaring them keeps `azd provision` the owner.
var appTables = [
  'Tenants'
  'Agents'
  'Secrets'
  'Presences'
  'PresenceHealth'
  'Parked'
  'InteractSettings'
  'InteractSessions'
  'RoutingQueues'
  'RoutingAgents'
  'Audit'
  'Outbound'
  'UserStates'
  'Calls'
  'DirectorySync'
]
var tableNames = [for t in appTables: '${tableNamePrefix}${t}']

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: tableNames
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    queues: serviceBusQueues
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    enablePurgeProtection: keyVaultEnablePurgeProtection
    graphClientSecret: graphClientSecret
  }
}

module network 'modules/network.bicep' = if (enableNatGateway) {
  name: 'network'
  scope: rg
  params: {
    virtualNetworkName: '${abbrs.networkVirtualNetworks}${resourceToken}'
    subnetName: '${abbrs.networkVirtualNetworksSubnets}app'
    natGatewayName: '${abbrs.networkNatGateways}${resourceToken}'
    publicIpName: '${abbrs.networkPublicIPAddresses}ng-${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    principalId: principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// The app settings as they are before this provision writes them. Only the secret
// settings are read: a Key Vault reference there means an earlier provision stored that
// secret, so the setting keeps referencing it when this provision is not given the value
// (the azd environment need not hold a secret once it is in the vault). The app's own
// settings are the one record of that which every machine and pipeline running
// `azd provision` shares; a flag in one azd environment would be lost with it, and a
// Key Vault secret's existence cannot be tested by a template (an `existing` reference to
// a missing secret fails the deployment). Read here, not in appsettings.bicep: a template
// that reads the resource it also writes is a dependency cycle to ARM. The site exists by
// now (api.outputs); on the first provision it has no GraphClientSecret yet.
#disable-next-line use-resource-symbol-reference
var currentAppSettings = list('${api.outputs.id}/config/appsettings', '2024-04-01').properties

// GraphClientSecret as a Key Vault reference, resolved by the platform with the app's
// identity (keyVaultReferenceIdentity). Versionless: the app gets the newest version of
// the secret, at the latest 24 hours after a rotation or at once on a settings change or
// a reference refresh (README.md (Deploy to Azure), rotation).
var graphClientSecretReference = '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${keyVault.outputs.graphClientSecretName})'

// Every app setting of the function app, in one place (deploytest parses this block).
var appSettings = {
  // Host storage (timer locks, keys) and the app's tables, identity-based: the account
  // refuses shared keys, so there is no AzureWebJobsStorage connection string.
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  // The Service Bus triggers' connection ("connection": "ServiceBusConnection").
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identity.outputs.clientId
  // azidentity in the handler: which user-assigned identity a managed-identity credential uses.
  AZURE_CLIENT_ID: identity.outputs.clientId
  // Application Insights with local (key) auth disabled: the host signs in as the identity.
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  // The handler's own settings (shared/config). Flex Consumption rejects
  // FUNCTIONS_WORKER_RUNTIME and WEBSITE_TIME_ZONE: the runtime comes from functionAppConfig
  // and schedules are UTC. FUNCTIONS_CUSTOMHANDLER_PORT is set by the host.
  Storage: 'Tables'
  TableNamePrefix: tableNamePrefix
  PresenceRefreshSchedule: presenceRefreshSchedule
  PresenceQueue: presenceQueueName
  CallsQueue: callsQueueName
  OutboundRequestsQueue: outboundRequestsQueueName
  OutboundDueQueue: outboundDueQueueName
  OutboundHorizonDays: outboundHorizonDays
  OutboundReconcileSchedule: outboundReconcileSchedule
  ProvisioningSchedule: provisioningSchedule
  CallsReconcileSchedule: callsReconcileSchedule
  DirectorySyncSchedule: directorySyncSchedule
  CallingWebhookUrl: callingWebhookUrl
  CallingOpenIdMetadataUrl: callingOpenIdMetadataUrl
  InteractKeyGraceSeconds: interactKeyGraceSeconds
  InteractTokenAudiences: interactTokenAudiences
  EntraJwksUrl: entraJwksUrl
  PresenceMaxInFlight: presenceMaxInFlight
  PresenceMaxTenantsInFlight: presenceMaxTenantsInFlight
  PresenceOfflineDampingSeconds: presenceOfflineDampingSeconds
  PresencePrivacyModePolls: presencePrivacyModePolls
  PresenceAccountRetrySeconds: presenceAccountRetrySeconds
  PresenceMaxAgeSeconds: presenceMaxAgeSeconds
  GraphClientId: graphClientId
  // The Key Vault reference whenever the secret is in the vault: this provision stores it
  // (a value is given), or an earlier one did (the setting already references the vault).
  // Empty only while no secret was ever given: a reference to a missing secret would reach
  // the handler as the literal "@Microsoft.KeyVault(...)" text.
  GraphClientSecret: (!empty(graphClientSecret) || startsWith(currentAppSettings.?GraphClientSecret ?? '', '@Microsoft.KeyVault(')) ? graphClientSecretReference : ''
  GraphBaseUrl: graphBaseUrl
  EntraAuthorityHost: entraAuthorityHost
  LogLevel: logLevel
  AdminAudiences: adminAudiences
  OperatorAppRole: operatorAppRole
}

module api 'modules/functionapp.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.primaryBlobEndpoint
    deploymentContainerName: deploymentContainerName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    virtualNetworkSubnetId: enableNatGateway ? network.outputs.subnetId : ''
  }
  // Start the host only once its identity may read storage, Service Bus and Key Vault.
  dependsOn: [
    rbac
  ]
}

// The settings, once the site exists: CallingWebhookUrl names the site's own host.
module apiSettings 'modules/appsettings.bicep' = {
  name: 'api-settings'
  scope: rg
  params: {
    functionAppName: api.outputs.name
    appSettings: appSettings
  }
}

// The Teams calling bot: needs the app's Entra registration as its Microsoft App ID, so
// it exists only when graphClientId is set. Its calling webhook is CallingWebhookUrl.
module bot 'modules/bot.bicep' = if (!empty(graphClientId)) {
  name: 'bot'
  scope: rg
  params: {
    name: '${abbrs.botServicesBot}${resourceToken}'
    tags: tags
    displayName: 'teamscc ${environmentName}'
    sku: botSku
    msaAppId: graphClientId
    msaAppTenantId: empty(graphTenantId) ? tenant().tenantId : graphTenantId
    messagingEndpoint: 'https://${api.outputs.defaultHostName}/api/teams/messages'
    callingWebhookUrl: callingWebhookUrl
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.applicationInsightsConnectionString
// The addresses Entra sees when the presence accounts sign in: tenant admins add them as a
// trusted named location in conditional access (README.md (Deploy to Azure)). Without the NAT gateway
// they are the site's possible outbound addresses, which on Flex Consumption are shared
// and can change; with it, the one static NAT address.
output OUTBOUND_IP_ADDRESSES string = enableNatGateway ? network.outputs.natPublicIpAddress : api.outputs.possibleOutboundIpAddresses
output NAT_GATEWAY_PUBLIC_IP string = enableNatGateway ? network.outputs.natPublicIpAddress : ''
// The Azure Bot (empty without graphClientId) and the webhook its Teams channel calls.
output BOT_NAME string = empty(graphClientId) ? '' : bot.outputs.name
output CALLING_WEBHOOK_URL string = callingWebhookUrl
