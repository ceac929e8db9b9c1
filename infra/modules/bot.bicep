// The Azure Bot that makes the app a Teams calling bot: calls to a resource account
// (application instance) linked to the bot's app id reach the "Webhook (for calling)" of
// the bot's Microsoft Teams channel, the app's /api/teams/notifications. The bot's
// identity is the app's own Entra registration (GraphClientId); the app answers and
// places calls through Graph with that registration's application permissions, so the
// bot holds no secret of its own. Created only when main.bicep has a graphClientId.
//
// Checked against the Microsoft.BotService 2022-09-15 resource types (the newest GA
// version): botServices properties endpoint, msaAppId and displayName are required;
// the Teams channel's properties are isEnabled (required), enableCalling,
// callingWebhook, incomingCallRoute, deploymentEnvironment and acceptedTerms.
param name string
param tags object = {}

@description('Name the bot shows in the portal and in Teams.')
param displayName string

@allowed([
  'F0'
  'S1'
])
@description('Pricing tier. Teams is a standard channel; the tiers differ in premium-channel (Direct Line, Web Chat) messages, which this bot does not use.')
param sku string = 'F0'

@description('Microsoft App ID of the bot: the client id of the app\'s Entra registration (GraphClientId).')
param msaAppId string

@description('Home tenant of that registration. New Azure Bots are single-tenant or managed identity: the MultiTenant bot type can no longer be created (deprecated 31 July 2025). The registration itself stays multi-tenant, so the bot serves resource accounts in every customer tenant that consented.')
param msaAppTenantId string

@description('Messaging endpoint (required by the resource). The app takes no chat messages: it is a calling bot only.')
param messagingEndpoint string

@description('Webhook (for calling) of the Teams channel: CallingWebhookUrl, the app\'s /api/teams/notifications.')
param callingWebhookUrl string

@description('Teams deployment the channel serves; national clouds use another value.')
param deploymentEnvironment string = 'CommercialDeployment'

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: name
  location: 'global'
  tags: tags
  kind: 'azurebot'
  sku: {
    name: sku
  }
  properties: {
    displayName: displayName
    endpoint: messagingEndpoint
    msaAppId: msaAppId
    msaAppType: 'SingleTenant'
    msaAppTenantId: msaAppTenantId
    // No channel keys (Direct Line, Web Chat secrets): only Entra tokens.
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// Calling on: the calling platform posts every call notification to callingWebhook.
// incomingCallRoute 'graphPma' is the value the portal writes for the Graph calling
// platform. acceptedTerms accepts the Microsoft Teams channel's terms of service for
// this bot, as the portal's "Agree" does.
resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
      enableCalling: true
      callingWebhook: callingWebhookUrl
      incomingCallRoute: 'graphPma'
      deploymentEnvironment: deploymentEnvironment
      acceptedTerms: true
    }
  }
}

output id string = bot.id
output name string = bot.name
