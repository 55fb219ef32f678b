// Initiates the replica set rs0 once its three members answer; does nothing if it is initiated
// already. Run by the Job mongodb-replica-set-init with mongosh --nodb, as MongoDB's root user
// (Secret mongodb-root, mounted as files: never in a command line or the environment).
const fs = require('fs');

const members = [0, 1, 2].map((id) => ({ _id: id, host: `mongodb-${id}.mongodb:27017` }));
const user = fs.readFileSync('/etc/mongodb-root/username', 'utf8');
const password = fs.readFileSync('/etc/mongodb-root/password', 'utf8');
if (!user || !password) {
  throw new Error('the mongodb-root Secret has an empty username or password');
}

function connectTo(host) {
  const admin = new Mongo(`mongodb://${host}/?directConnection=true`).getDB('admin');
  admin.auth(user, password);
  return admin;
}

// Every member must answer before the set is initiated (up to 5 minutes: new volumes, pulls).
for (const member of members) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      new Mongo(`mongodb://${member.host}/?directConnection=true`).getDB('admin').runCommand({ ping: 1 });
      break;
    } catch (error) {
      if (attempt >= 150) {
        throw new Error(`${member.host} did not answer within 5 minutes: ${error.message}`);
      }
      sleep(2000);
    }
  }
}

const admin = connectTo(members[0].host);
const status = admin.runCommand({ replSetGetStatus: 1 });
if (status.ok === 1) {
  print(`replica set ${status.set} is initiated already: nothing to do`);
} else if (status.codeName === 'NotYetInitialized') {
  const result = admin.runCommand({ replSetInitiate: { _id: 'rs0', members: members } });
  if (result.ok !== 1) {
    throw new Error(`replSetInitiate failed: ${result.errmsg}`);
  }
  print(`initiated replica set rs0 with ${members.map((member) => member.host).join(', ')}`);
} else {
  throw new Error(`replSetGetStatus failed: ${status.errmsg}`);
}
