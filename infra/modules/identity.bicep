// The function app's user-assigned managed identity. A user-assigned identity (rather than
// the site's system identity) exists before the site, so its roles are in place when the
// host first starts, and the deployment storage can name it.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
