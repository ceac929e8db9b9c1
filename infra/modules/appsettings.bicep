// The function app's app settings, applied once the site exists: some settings name the
// site's own host (CallingWebhookUrl), which is known only after the site is created.
// The whole set: settings not listed here are removed on the next `azd provision`.
@description('Name of the function app (functionapp.bicep).')
param functionAppName string

@description('Every app setting, built in main.bicep.')
param appSettings object

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}
